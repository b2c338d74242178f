// Kernels that fault the device on purpose (umd/samples/faults.c).
//
// copy_u32(ptr src, ptr dst, u32 n): dst[i] = src[i] for i < n.  With n past the end of
//   src it is an out-of-bounds load, past the end of dst an out-of-bounds store (buffers
//   are separated by unmapped guard space, as on real GPUs).
.entry copy_u32
.param ptr src
.param ptr dst
.param u32 n
        s2r             r0, %tid.x
        s2r             r1, %ctaid.x
        s2r             r2, %ntid.x
        mad.lo.u32      r0, r1, r2, r0          // i
        ld.param.u32    r3, [n]
        setp.ge.u32     p0, r0, r3
  @p0   exit
        mul.wide.u32    r4, r0, 4
        ld.param.u64    r6, [src]
        add.u64         r6, r6, r4
        ld.global.u32   r8, [r6]
        ld.param.u64    r6, [dst]
        add.u64         r6, r6, r4
        st.global.u32   [r6], r8
        exit

// load_misaligned(ptr p): a 4-byte load from p + 2.
.entry load_misaligned
.param ptr p
        ld.param.u64    r0, [p]
        ld.global.u32   r2, [r0+2]
        exit

// illegal(): opcode 0xee does not exist.
.entry illegal
        nop
        .raw 0xee 0x00 0x00 0x00 0x00 0x00 0x00 0x00 0x00 0x00 0x00 0x00 0x00 0x00 0x00 0x00
        exit

// spin(): never ends; the watchdog stops it.
.entry spin
loop:   bra             loop
