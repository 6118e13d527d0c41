"""gr-diffsem GNU Radio blocks: `from gnuradio import diffsem`.

Thin adapters (streams, PDUs, tags, message ports) over the core library `diffsem`
(python/diffsem in the source tree). Blocks are imported lazily by name so that importing
the package does not load torch or onnxruntime.
"""
