// scan_u32(ptr in, ptr out, u32 n): per-block inclusive prefix sum:
// out[i] = in[b*ntid] + ... + in[i] for the block b holding i (Hillis-Steele, double
// buffered in shared memory: buffers at 0 and 4096, so ntid.x <= 1024).
// A whole-array scan adds each block's last value to the following blocks (host or a
// second launch).
.entry scan_u32
.param ptr in
.param ptr out
.param u32 n
.shared 8192
        s2r             r0, %tid.x
        s2r             r1, %ctaid.x
        s2r             r2, %ntid.x
        mad.lo.u32      r3, r1, r2, r0          // i
        ld.param.u32    r4, [n]
        setp.lt.u32     p0, r3, r4              // p0: i < n
        mul.wide.u32    r6, r3, 4
        mov.u32         r5, 0
  @!p0  bra             have
        ld.param.u64    r8, [in]
        add.u64         r8, r8, r6
        ld.global.u32   r5, [r8]
have:   shl.u32         r10, r0, 2              // tid * 4
        st.shared.u32   [r10], r5
        bar.sync
        mov.u32         r11, 0                  // byte base of the buffer being read
        mov.u32         r12, 1                  // offset: 1, 2, 4, ...
step:   setp.ge.u32     p1, r12, r2
  @p1   bra             write_out
        add.u32         r13, r10, r11
        ld.shared.u32   r5, [r13]
        setp.ge.u32     p2, r0, r12
  @!p2  bra             put
        sub.u32         r14, r0, r12
        shl.u32         r14, r14, 2
        add.u32         r14, r14, r11
        ld.shared.u32   r15, [r14]              // cur[tid - offset]
        add.u32         r5, r5, r15
put:    xor.u32         r11, r11, 4096          // write the other buffer
        add.u32         r13, r10, r11
        st.shared.u32   [r13], r5
        bar.sync
        shl.u32         r12, r12, 1
        bra             step
write_out:
  @!p0  exit
        ld.param.u64    r8, [out]
        add.u64         r8, r8, r6
        st.global.u32   [r8], r5
        exit
