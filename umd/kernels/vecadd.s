// vecadd(ptr a, ptr b, ptr c, u32 n): c[i] = a[i] + b[i] on f32,
// i = ctaid.x * ntid.x + tid.x, threads with i >= n do nothing.
.entry vecadd
.param ptr a
.param ptr b
.param ptr c
.param u32 n
        s2r             r0, %tid.x
        s2r             r1, %ctaid.x
        s2r             r2, %ntid.x
        mad.lo.u32      r0, r1, r2, r0          // i
        ld.param.u32    r3, [n]
        setp.ge.u32     p0, r0, r3
  @p0   exit
        mul.wide.u32    r6, r0, 4               // r6:r7 = i * sizeof(float)
        ld.param.u64    r4, [a]
        add.u64         r8, r4, r6
        ld.global.f32   r10, [r8]
        ld.param.u64    r4, [b]
        add.u64         r8, r4, r6
        ld.global.f32   r11, [r8]
        add.f32         r10, r10, r11
        ld.param.u64    r4, [c]
        add.u64         r8, r4, r6
        st.global.f32   [r8], r10
        exit
