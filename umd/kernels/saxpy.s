// saxpy(u32 n, f32 alpha, ptr x, ptr y): y[i] = alpha * x[i] + y[i] on f32.
.entry saxpy
.param u32 n
.param f32 alpha
.param ptr x
.param ptr y
        s2r             r0, %tid.x
        s2r             r1, %ctaid.x
        s2r             r2, %ntid.x
        mad.lo.u32      r0, r1, r2, r0          // i
        ld.param.u32    r3, [n]
        setp.ge.u32     p0, r0, r3
  @p0   exit
        mul.wide.u32    r6, r0, 4               // byte offset of element i
        ld.param.u64    r4, [x]
        add.u64         r8, r4, r6
        ld.global.f32   r10, [r8]               // x[i]
        ld.param.u64    r4, [y]
        add.u64         r8, r4, r6
        ld.global.f32   r11, [r8]               // y[i]
        ld.param.f32    r12, [alpha]
        mad.lo.f32      r11, r12, r10, r11      // alpha * x[i] + y[i], one rounding
        st.global.f32   [r8], r11
        exit
