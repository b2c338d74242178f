// hello(u32 n): every thread prints its coordinates and n, then thread 0 of each block
// prints a float; exercises device printf.
.entry hello
.param u32 n
        s2r             r0, %tid.x
        s2r             r1, %ctaid.x
        ld.param.u32    r2, [n]
        printf          "block %u thread %u: n=%d\n", r1, r0, r2
        setp.ne.u32     p0, r0, 0
  @p0   exit
        cvt.f32.u32     r3, r1
        mul.f32         r3, r3, 0.5
        printf          "block %u half=%.2f\n", r1, r3
        exit
