// empty(): does nothing; for launch-rate benchmarks.
.entry empty
        exit
