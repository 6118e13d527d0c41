"""gr-diffsem programs: the `diffsem` command and everything that needs both the core library
(`diffsem`) and the GNU Radio blocks (`gnuradio.diffsem`): the TX / channel / RX radio apps and
their endpoints, the demo, the link and PHY benchmarks and measurements, the impairment report
and the flowgraph path of the sweep. Nothing below imports this package (docs/architecture.md).
"""
