// fill_u32(ptr dst, u32 value, u32 n): dst[i] = value for i < n, grid-stride loop so
// any grid size covers any n.
.entry fill_u32
.param ptr dst
.param u32 value
.param u32 n
        s2r             r0, %tid.x
        s2r             r1, %ctaid.x
        s2r             r2, %ntid.x
        mad.lo.u32      r0, r1, r2, r0          // i
        s2r             r3, %nctaid.x
        mul.lo.u32      r3, r3, r2              // stride = nctaid.x * ntid.x
        ld.param.u32    r4, [n]
        ld.param.u32    r5, [value]
        ld.param.u64    r6, [dst]
loop:   setp.ge.u32     p0, r0, r4
  @p0   exit
        mul.wide.u32    r8, r0, 4
        add.u64         r8, r6, r8
        st.global.u32   [r8], r5
        add.u32         r0, r0, r3
        bra             loop
