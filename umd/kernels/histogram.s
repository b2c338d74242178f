// histogram_u8(ptr data, u32 n, ptr bins): bins[data[i]] += 1 for i < n (256 u32 bins).
// Each block counts into a private copy of the bins in shared memory (shared atomics),
// then adds its non-zero bins to the global ones (global atomics).  Grid-stride loop:
// any grid covers any n.
.entry histogram_u8
.param ptr data
.param u32 n
.param ptr bins
.shared 1024
        s2r             r0, %tid.x
        s2r             r1, %ctaid.x
        s2r             r2, %ntid.x
        mad.lo.u32      r3, r1, r2, r0          // i
        s2r             r4, %nctaid.x
        mul.lo.u32      r4, r4, r2              // grid stride
        ld.param.u32    r5, [n]
        ld.param.u64    r6, [data]
        ld.param.u64    r8, [bins]
        mov.u32         r10, r0                 // clear the block's bins
zero:   setp.ge.u32     p0, r10, 256
  @p0   bra             count
        shl.u32         r11, r10, 2
        st.shared.u32   [r11], rz
        add.u32         r10, r10, r2
        bra             zero
count:  bar.sync
        mov.u32         r15, 1
next_i: setp.ge.u32     p1, r3, r5
  @p1   bra             merge
        cvt.u64.u32     r12, r3
        add.u64         r12, r6, r12
        ld.global.u8    r14, [r12]
        shl.u32         r14, r14, 2
        red.shared.add.u32 [r14], r15
        add.u32         r3, r3, r4
        bra             next_i
merge:  bar.sync
        mov.u32         r10, r0
mloop:  setp.ge.u32     p2, r10, 256
  @p2   exit
        shl.u32         r11, r10, 2
        ld.shared.u32   r16, [r11]
        setp.eq.u32     p3, r16, 0
  @p3   bra             skip
        mul.wide.u32    r18, r10, 4
        add.u64         r18, r8, r18
        red.global.add.u32 [r18], r16
skip:   add.u32         r10, r10, r2
        bra             mloop
