"""Link-level logic of the semantic and digital links, with no GNU Radio in it: sequence numbers
(`seq`), frame accounting and reference matching (`accounting`), and the ZMQ taps message
formats and their subscriber (`taps`, `monitor`). The blocks in ``gnuradio.diffsem`` adapt it."""
