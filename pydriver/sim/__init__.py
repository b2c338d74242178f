"""The simulated aicard device: the SIMT executor and its faults.

    from pydriver.sim.executor import Program, launch     # decode once, launch many times
    from pydriver.sim.faults import DeviceFault, MemoryFault

See executor.py for the execution model and docs/ISA.md for the instruction set.
"""
