"""The English library language models pretrain on: dictd dictionaries read by their index,
entries cleaned of markup, WordNet glosses, and the real packages' sizes."""

import gzip

from shared.data import english_library as library


def _b64(value):
    digits = ""
    while True:
        digits = library._B64[value % 64] + digits
        value //= 64
        if not value:
            return digits


def test_dictd_entries_are_read_by_their_index_and_cleaned(tmp_path):
    header = "00-database-short\n   A dictionary\n"
    first = 'Abjure \\Ab*jure"\\, v. t. [L. abjurare.]\n   1. To renounce upon oath; as, to abjure\n      errors. --Shak.\n      [1913 Webster]\n\n   Syn: See {Renounce}.\n'
    second = "benchmark\n n.\n\n    [techspeak] An inaccurate measure of computer performance.\n"
    data = (header + first + second).encode("utf-8")
    spans = [("00-database-short", 0, len(header)), ("abjure", len(header), len(first)),
             ("abjured", len(header), len(first)),  # another headword of the same entry: read once
             ("benchmark", len(header) + len(first), len(second))]
    (tmp_path / "d.index").write_text("".join(f"{w}\t{_b64(o)}\t{_b64(n)}\n" for w, o, n in spans))
    with gzip.open(tmp_path / "d.dict.dz", "wb") as f:
        f.write(data)
    entries = library.dictd_entries(str(tmp_path), "d")
    assert entries == [first, second]
    assert library.clean_entry(first) == ("Abjure v. t. [L. abjurare.] 1. To renounce upon oath; as, to abjure "
                                          "errors. --Shak.\nSyn: See Renounce.")
    assert library.clean_entry(second) == ("benchmark n.\n[techspeak] An inaccurate measure of computer "
                                           "performance.")


def test_the_library_is_tens_of_megabytes_of_english():
    sizes = {}
    for name, text in library.library_documents():
        sizes[name] = sizes.get(name, 0) + len(text.encode("utf-8"))
    assert set(sizes) == set(library.SOURCES)
    assert sizes["gcide"] > 25e6 and sizes["wordnet"] > 10e6 and sizes["jargon"] > 1e6  # measured 28.7, 11.4, 1.3 MB
    glosses = library.wordnet()
    assert any(g.startswith("range, mountain range, range of mountains") for g in glosses)
    entries = library.gcide()
    marked = sum("\\" in t or "[1913 Webster]" in t for t in entries)  # measured 98 of 123,088 (odd markup)
    assert marked < 0.002 * len(entries)
