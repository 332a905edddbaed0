import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.framing import RejectedBytes, ScannedFrame, ScannerFramer

codes = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60)


def feed_in_chunks(framer: ScannerFramer, data: bytes, cuts: list[int]) -> list[ScannedFrame | RejectedBytes]:
    out = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        out += framer.feed(data[a:b])
    return out


@given(st.lists(codes, min_size=1, max_size=8), st.lists(st.integers(min_value=0, max_value=10_000), max_size=20))
def test_any_chunking_yields_the_same_codes(items: list[str], cuts: list[int]) -> None:
    data = b"".join(c.encode() + b"\r\n" for c in items)
    out = feed_in_chunks(ScannerFramer(), data, cuts)
    assert out == [ScannedFrame(c, None, None) for c in items]


def test_aim_identifier_is_parsed_and_named() -> None:
    framer = ScannerFramer(aim=True)
    out = framer.feed(b"]E06901234567892\r\n]Q1PM1.abc.def\r\n]E412345670\r\n")
    assert out == [
        ScannedFrame("6901234567892", "ean-upc", "]E0"),
        ScannedFrame("PM1.abc.def", "qr", "]Q1"),
        ScannedFrame("12345670", "ean-8", "]E4"),
    ]


def test_noise_is_rejected_without_hiding_the_next_code() -> None:
    framer = ScannerFramer()
    out = framer.feed(b"\x00\xff\x07garbage\r\n6901234567892\r\n")
    assert isinstance(out[0], RejectedBytes)
    assert out[0].reason == "non-printable bytes in frame"
    assert out[1] == ScannedFrame("6901234567892", None, None)


def test_prefix_resynchronises_after_noise() -> None:
    framer = ScannerFramer(prefix=b"\x02", suffix=b"\x03")
    out = framer.feed(b"zz\x02ABC\x03nope\x03\x02DEF\x03")
    assert out[0] == ScannedFrame("ABC", None, None)
    assert isinstance(out[1], RejectedBytes)
    assert out[1].reason == "frame without the configured prefix"
    assert out[2] == ScannedFrame("DEF", None, None)


def test_a_frame_that_never_ends_is_refused_whole_and_never_grown_forever() -> None:
    framer = ScannerFramer(max_length=32)
    assert framer.feed(b"A" * 40) == []  # nothing is complete yet; only what may start a suffix is held
    assert framer.pending <= 1
    for _ in range(1000):
        framer.feed(b"A" * 1000)  # a scanner stuck sending: memory stays bounded
    assert framer.pending <= 1
    (refused,) = framer.feed(b"OK\r\n")  # its tail is the end of the same frame, never a code of its own
    assert isinstance(refused, RejectedBytes)
    assert refused.reason == "a frame of 1000042 bytes, longer than 32"
    assert len(refused.raw) == 32
    assert framer.feed(b"NEXT\r\n") == [ScannedFrame("NEXT", None, None)]


frames = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=20, max_size=60).map(str.encode),
    st.binary(max_size=80).filter(lambda b: b"\r\n" not in b),
)


@settings(max_examples=300)
@given(
    st.lists(frames, min_size=1, max_size=6),
    st.lists(st.integers(min_value=0, max_value=500), max_size=20),
    st.booleans(),
)
def test_frames_and_refusals_are_the_same_however_the_bytes_are_cut(
    frames: list[bytes], cuts: list[int], end: bool
) -> None:
    """The failures reproduced: a frame over max_length was taken whole in one read but cut into a refusal and
    a "code" in pieces; a frame of exactly max_length was lost when its suffix came in a later read."""
    data = b"\r\n".join(frames) + (b"\r\n" if end else b"")
    whole = ScannerFramer(max_length=32)
    pieces = ScannerFramer(max_length=32)
    assert whole.feed(data) + whole.flush() == feed_in_chunks(pieces, data, cuts) + pieces.flush()


def test_a_frame_of_exactly_max_length_survives_its_suffix_arriving_later() -> None:
    framer = ScannerFramer(max_length=8)
    assert framer.feed(b"12345678\r") == []
    assert framer.feed(b"\n") == [ScannedFrame("12345678", None, None)]


def test_flush_reports_a_cut_off_partial_frame() -> None:
    framer = ScannerFramer()
    assert framer.feed(b"69012345") == []
    assert framer.pending == 8
    flushed = framer.flush()
    assert flushed == [RejectedBytes(b"69012345", "incomplete frame of 8 bytes (no suffix)")]
    assert framer.flush() == []


def test_blank_lines_are_ignored() -> None:
    assert ScannerFramer().feed(b"\r\n\r\nX\r\n") == [ScannedFrame("X", None, None)]


def test_aim_identifier_alone_is_rejected() -> None:
    out = ScannerFramer(aim=True).feed(b"]Q1\r\n")
    assert isinstance(out[0], RejectedBytes)


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_arbitrary_bytes_never_raise_and_never_lose_track(data: bytes, cuts: list[int]) -> None:
    framer = ScannerFramer(max_length=64)
    out = feed_in_chunks(framer, data, cuts) + framer.flush()
    assert framer.pending == 0
    for item in out:
        if isinstance(item, ScannedFrame):
            assert item.data.isprintable()
            assert "\r\n" not in item.data
