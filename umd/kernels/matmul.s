// matmul_f32(ptr a, ptr b, ptr c, u32 m, u32 n, u32 k): C = A * B, row-major f32,
// A is m x k, B is k x n, C is m x n.  Launch with block (16, 16, 1) and
// grid (ceil(n / 16), ceil(m / 16), 1).  Each block computes a 16 x 16 tile of C,
// staging 16 x 16 tiles of A and B through shared memory (As at 0, Bs at 1024).
.entry matmul_f32
.param ptr a
.param ptr b
.param ptr c
.param u32 m
.param u32 n
.param u32 k
.shared 2048
        s2r             r0, %tid.x
        s2r             r1, %tid.y
        s2r             r2, %ctaid.x
        s2r             r3, %ctaid.y
        mad.lo.u32      r4, r3, 16, r1          // row
        mad.lo.u32      r5, r2, 16, r0          // col
        ld.param.u32    r6, [m]
        ld.param.u32    r7, [n]
        ld.param.u32    r8, [k]
        ld.param.u64    r14, [a]
        ld.param.u64    r16, [b]
        ld.param.u64    r18, [c]
        mov.f32         r9, 0.0                 // acc
        mov.u32         r10, 0                  // t: first k of the current tile
        mad.lo.u32      r22, r1, 16, r0
        shl.u32         r22, r22, 2             // &As[ty][tx]; Bs[ty][tx] is 1024 further
        setp.lt.u32     p4, r4, r6              // row < m
        setp.lt.u32     p5, r5, r7              // col < n
tile:   setp.ge.u32     p0, r10, r8
  @p0   bra             finish
        mov.f32         r12, 0.0                // As[ty][tx] = A[row][t + tx] or 0
        add.u32         r13, r10, r0
        setp.lt.u32     p1, r13, r8
        and.pred        p1, p1, p4
  @!p1  bra             put_a
        mad.lo.u32      r13, r4, r8, r13
        mul.wide.u32    r20, r13, 4
        add.u64         r20, r14, r20
        ld.global.f32   r12, [r20]
put_a:  st.shared.f32   [r22], r12
        mov.f32         r12, 0.0                // Bs[ty][tx] = B[t + ty][col] or 0
        add.u32         r13, r10, r1
        setp.lt.u32     p2, r13, r8
        and.pred        p2, p2, p5
  @!p2  bra             put_b
        mad.lo.u32      r13, r13, r7, r5
        mul.wide.u32    r20, r13, 4
        add.u64         r20, r16, r20
        ld.global.f32   r12, [r20]
put_b:  st.shared.f32   [r22+1024], r12
        bar.sync
        mov.u32         r11, 0
        shl.u32         r23, r1, 6              // &As[ty][0]
        shl.u32         r24, r0, 2              // &Bs[0][tx] - 1024
inner:  ld.shared.f32   r12, [r23]
        ld.shared.f32   r13, [r24+1024]
        mad.f32         r9, r12, r13, r9
        add.u32         r23, r23, 4
        add.u32         r24, r24, 64
        add.u32         r11, r11, 1
        setp.lt.u32     p3, r11, 16
  @p3   bra             inner
        bar.sync                                // the tile is consumed before it is refilled
        add.u32         r10, r10, 16
        bra             tile
finish: and.pred        p6, p4, p5
  @!p6  exit
        mad.lo.u32      r13, r4, r7, r5
        mul.wide.u32    r20, r13, 4
        add.u64         r20, r18, r20
        st.global.f32   [r20], r9
        exit
