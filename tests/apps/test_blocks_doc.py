"""docs/guide/blocks.md's block sections are grc/*.block.yml's (diffsem report blocks): a
parameter added, renamed or given another default in GRC shows in the guide."""
import shutil

from diffsem_apps import blocks_doc


def test_the_block_guide_is_what_grc_defines():
    assert blocks_doc.main(["--check"]) == 0, "run: diffsem report blocks"


def test_a_changed_default_in_grc_makes_the_guide_stale_until_rewritten(tmp_path):
    shutil.copytree(blocks_doc.ROOT / "grc", tmp_path / "grc")
    (tmp_path / "docs/guide").mkdir(parents=True)
    shutil.copy(blocks_doc.ROOT / blocks_doc.GUIDE, tmp_path / blocks_doc.GUIDE)
    yml = tmp_path / "grc/diffsem_channel_sim.block.yml"
    yml.write_text(yml.read_text().replace("default: '0.125'", "default: '0.25'"))
    assert blocks_doc.main(["--check", "--root", str(tmp_path)]) == 1
    own = (tmp_path / blocks_doc.GUIDE).read_text().split("Counters (`stats()`): `address`")[1][:40]
    assert blocks_doc.main(["--root", str(tmp_path)]) == 0
    guide = (tmp_path / blocks_doc.GUIDE).read_text()
    assert "| `impairment_fraction` | Fraction (symbols / carriers / tail) | `0.25` |" in guide
    assert own in guide                                    # the guide's own Counters paragraphs stay
    assert blocks_doc.main(["--check", "--root", str(tmp_path)]) == 0
