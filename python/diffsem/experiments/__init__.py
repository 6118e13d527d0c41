"""Experiments on the core library, no GNU Radio: the scheme interface over the exported or
trained models (`schemes`), evaluation over channels and SNRs with its rows, plots and mosaics
(`evaluate`), the resumable sweep grid (`sweep`; its flowgraph path is run by the apps) and the
decoder benchmark (`bench_decoder`)."""
