// reduce_sum_f32(ptr in, ptr out, u32 n): *out += sum(in[0..n)) on f32.
// Each block sums its ntid.x elements in shared memory (tree reduction, a bar.sync per level)
// and thread 0 adds the block's sum to *out with a global atomic.
// ntid.x must be a power of two, at most 1024; *out must start at 0.
.entry reduce_sum_f32
.param ptr in
.param ptr out
.param u32 n
.shared 4096
        s2r             r0, %tid.x
        s2r             r1, %ctaid.x
        s2r             r2, %ntid.x
        mad.lo.u32      r3, r1, r2, r0          // i
        ld.param.u32    r4, [n]
        mov.f32         r5, 0.0
        setp.lt.u32     p0, r3, r4
  @!p0  bra             store                   // out of range: contribute 0
        ld.param.u64    r6, [in]
        mul.wide.u32    r8, r3, 4
        add.u64         r6, r6, r8
        ld.global.f32   r5, [r6]
store:  shl.u32         r10, r0, 2              // &sdata[tid]
        st.shared.f32   [r10], r5
        bar.sync
        shr.u32         r11, r2, 1              // s = ntid / 2
level:  setp.eq.u32     p1, r11, 0
  @p1   bra             done
        setp.lt.u32     p2, r0, r11
  @!p2  bra             wait                    // only threads below s add
        shl.u32         r12, r11, 2
        add.u32         r12, r10, r12
        ld.shared.f32   r13, [r12]              // sdata[tid + s]
        ld.shared.f32   r14, [r10]
        add.f32         r14, r14, r13
        st.shared.f32   [r10], r14
wait:   bar.sync
        shr.u32         r11, r11, 1
        bra             level
done:   setp.ne.u32     p3, r0, 0
  @p3   exit
        ld.shared.f32   r13, [0]                // the block's sum
        ld.param.u64    r6, [out]
        red.global.add.f32 [r6], r13
        exit
