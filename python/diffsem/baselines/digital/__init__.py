"""The digital (separation) baseline: image codec -> CRC -> convolutional code -> QAM.

Everything in this package is plain numpy + Pillow (no GNU Radio), one module per concern, their
API re-exported here: `framing` (bit budget, payload, frames on the air), `modem` (mode table,
Gray QAM mapping and max-log LLR demapping), `codec` (codec fitting), `fec` (the K=7
convolutional code, bit-exact with gr-fec's ``cc_encoder``, polys 109/79, terminated;
puncturing; a soft-input Viterbi decoder equivalent to gr-fec's ``cc_decoder``, checked against
it in tests/blocks/qa_digital_link.py; interleaver and scrambler), `scheme` (the Scheme on the
library channel) and `cli` (`diffsem baseline digital`).
The blocks ``digital_link_tx`` / ``digital_link_rx`` run the same frames through gr-fec and the
semantic link's OFDM PHY (ofdm_analog_tx/rx, built on the stock gr-digital blocks).

How the k complex channel uses of one image are spent (the same k as the semantic link):

* **Mode** (modulation, code rate) from 802.11a's table plus 64-QAM 5/6. ``mode_for_snr`` picks
  the fastest mode whose measured threshold (frame error rate <= 1% at k=128 on AWGN, table
  ``MODE_THRESHOLDS_DB``) is below the operating SNR — link adaptation with perfect SNR
  knowledge, which is generous to this baseline. The mode is link configuration, signalled like
  802.11's SIGNAL field in the OFDM header symbols, which the semantic link has too: it is not
  counted in k. Everything else is.
* **Coded bits**: k * bits_per_symbol. The mother code adds 6 tail bits (termination) and is
  punctured to the mode's rate; the largest whole number of payload bytes whose coded length
  fits is used, and the leftover coded bits (< 8/rate + 1 bits) are zero padding. A 16-column
  block interleaver (802.11a's idea) spreads the frame's bits over the subcarriers, then
  802.11's scrambler (state from the frame's sequence number) is XORed onto all of them, so
  padding and tail bits look random on the air and the average power per channel use is 1.
* **Payload bytes**: 1 descriptor byte (codec id, quality index), a length field (1 byte, or 2
  when the payload can exceed 255 bytes), the codec data, zero padding, CRC-16-CCITT (2 bytes).
  A frame whose CRC fails shows a grey image (0.5) and is counted; so does an image for which
  no codec setting fits (``no_fit``: the transmitter sends nothing useful).
* **Codec data, headers shared out of band** where the header is a deterministic function of
  the descriptor: JPEG (28x28, standard Huffman tables, no optimisation) sends only its entropy-
  coded segment — SOI/APP0/DQT/SOF0/DHT/SOS are rebuilt from the quality, EOI appended; the
  ``jpeg14`` variant does the same on a 14x14 bicubic downsample (upsampled at the receiver),
  which is what an engineer does when 28x28 does not fit; WebP sends the VP8 frame minus its
  RIFF/chunk headers, start code and dimensions (27 bytes rebuilt from the length).
"""
from diffsem.baselines.digital.fec import (  # noqa: F401
    CC_K, CC_POLYS, CC_TAIL, INTERLEAVER_COLUMNS, PUNCTURE, SCRAMBLER_PERIOD, conv_encode,
    depuncture, frame_scrambler, interleaver, puncture, punctured_length, scrambler_sequence,
    viterbi_decode,
)
from diffsem.baselines.digital.modem import (  # noqa: F401
    MODE_THRESHOLDS_DB, MODES, MODULATIONS, Mode, bits_to_indices, constellation, demap_llr,
    mode_by_name, mode_for_snr,
)
from diffsem.baselines.digital.framing import (  # noqa: F401
    CRC_BYTES, DESCRIPTOR_BYTES, MTU, NO_IMAGE, Budget, Received, air_bits_from_mother, bit_budget,
    bits_to_bytes, build_payload, bytes_to_bits, coded_frame_bits, crc16, decode_frame_llr,
    idle_frame_bits, mother_llr_from_air, parse_payload,
)
from diffsem.baselines.digital.codec import (  # noqa: F401
    CODECS, GREY, N_QUALITY, SIDE, Fit, decode_image, encode_image, fit_codec, jpeg_header,
    quality_of, to_u8,
)
from diffsem.baselines.digital.scheme import (  # noqa: F401
    DigitalScheme, calibrate, frame_power, run_curve,
)
