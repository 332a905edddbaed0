"""The chaos run's disk filler: it fills a real file system however the last write lands."""

from pathlib import Path

from simulators.network_chaos import fill
from tests.harness import tmpfs


def test_filling_a_disk_whose_free_space_is_not_a_whole_number_of_writes_stops_quietly(tmp_path: Path) -> None:
    # Another writer's bytes leave the free space off the filler's 64 KiB stride, so its last write is partial:
    # a buffered file then kept the rest and raised ENOSPC again when closed (CI, stop 25).
    with tmpfs(tmp_path / "disk", "1m") as disk:
        for other in (0, 1000, 4096, 12288, 70000):
            (disk / "other").write_bytes(b"x" * other)
            filler = fill(disk)
            assert filler.stat().st_size > 900_000 - other
            filler.unlink()
            (disk / "after").write_bytes(b"y" * 65536)
            (disk / "after").unlink()
