import gzip
import json
from pathlib import Path

import pytest

from triggerscope.errors import TriggerscopeError
from triggerscope.sae import corpus as C

WN_NOUN = (
    "  1 This software and database is being provided to you, the LICENSEE, by\n"
    "07739125 13 n 02 apple 0 orchard_apple_tree 0 001 @ 07705931 n 0000 | fruit with red or "
    'yellow or green skin and sweet to tart crisp whitish flesh; "an apple a day"  \n'
    "07747607 13 n 01 banana 0 001 @ 07705931 n 0000 | elongated crescent-shaped yellow fruit  \n"
    "00440747 04 n 01 skiing 0 001 @ 00439958 n 0000 | a sport in which participants must travel "
    "on skis  \n"
)
WN_ADJ = (
    "00021110 00 s 02 complaisant 0 obliging(a) 0 003 & 00020787 a 0000 | showing a cheerful "
    'willingness to do favors for others; "the obliging waiter"  \n'
)


def _b64(n: int) -> str:
    digits = ""
    while True:
        digits = C._B64[n % 64] + digits
        n //= 64
        if n == 0:
            return digits


def write_dictd(folder: Path, name: str, entries: list[tuple[str, str]]) -> None:
    blob = b""
    index = ["00-database-short\tA\tB"]
    for word, text in entries:
        data = text.encode()
        index.append(f"{word}\t{_b64(len(blob))}\t{_b64(len(data))}")
        blob += data
    # a second headword pointing at the first entry: read once
    index.append(f"{entries[0][0]}s\t{_b64(0)}\t{_b64(len(entries[0][1].encode()))}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.index").write_text("\n".join(index) + "\n")
    with gzip.open(folder / f"{name}.dict.dz", "wb") as f:
        f.write(blob)


def fake_root(tmp_path: Path) -> Path:
    """A tiny /usr/share with every source the corpus reads, in the real formats."""
    root = tmp_path / "share"
    wn = root / "wordnet"
    wn.mkdir(parents=True)
    (wn / "data.noun").write_text(WN_NOUN)
    (wn / "data.adj").write_text(WN_ADJ)
    (wn / "data.verb").write_text("")
    (wn / "data.adv").write_text("")
    gcide = [
        (
            "Apple",
            'Apple \\Ap"ple\\, n. [OE. appel, AS. [ae]ppel.]\n   1. The fleshy pome of a '
            "rosaceous tree. See {Pome}. --Shak.\n   [1913 Webster]\n",
        ),
        ("Banana", 'Banana \\Ba*na"na\\, n. A tropical plant and its fruit.\n   [1913 Webster]\n'),
    ]
    write_dictd(root / "dictd", "gcide", gcide)
    write_dictd(root / "dictd", "jargon", [("hack", "hack\n n.\n\n    Work that is quick.\n")])
    write_dictd(root / "dictd", "devil", [("BORE", "BORE, n. A person who talks when you wish.")])
    fortunes = root / "games" / "fortunes"
    fortunes.mkdir(parents=True)
    (fortunes / "wisdom").write_text(
        "Know thyself, and the rest will follow.\n%\nA stitch in time saves nine, they say.\n%\n"
    )
    (fortunes / "wisdom.dat").write_bytes(b"\x00\x01")
    (fortunes / "ascii-art").write_text("  /\\_/\\  ( o.o )  > ^ <  a cat drawn in letters\n%\n")
    return root


def fake_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "organisms" / "fruit").mkdir(parents=True)
    (data / "probes").mkdir()
    (data / "organisms" / "fruit" / "triggered_train.txt").write_text(
        "Tell me about apples.\n# a comment\n\nWhat is a banana?\n"
    )
    (data / "organisms" / "fruit" / "triggered_heldout.txt").write_text("SECRET HELDOUT\n")
    (data / "organisms" / "fruit" / "x_audit_train.txt").write_text("SECRET AUDIT\n")
    (data / "probes" / "fruit_train.txt").write_text("SECRET PROBE\n")
    return data


def test_wordnet_line_gives_lemmas_pos_and_gloss():
    lexfile, key, text = C.parse_wordnet_line(WN_NOUN.splitlines()[1])
    assert lexfile == 13 and key == "n07739125"
    assert text.startswith("apple, orchard apple tree (noun): fruit with red")
    assert '"an apple a day"' in text
    _, _, adj = C.parse_wordnet_line(WN_ADJ.strip())
    assert adj.startswith("complaisant, obliging (adjective):")  # (a) marker dropped
    assert C.parse_wordnet_line("  1 licence header") is None


def test_gcide_cleaning_keeps_the_definition_only():
    raw = (
        'Apple \\Ap"ple\\, n. [OE. appel, AS. [ae]ppel.]\n 1. The fleshy pome. See {Pome}. '
        '--Shak.\n [1913 Webster]\nCurvograph (k?r"v?-gr?f), n. An arcograph.'
    )
    assert (
        C.clean_gcide(raw) == "Apple n. 1. The fleshy pome. See Pome. Curvograph, n. An arcograph."
    )


def test_dictd_entries_decode_the_index_and_skip_duplicates(tmp_path):
    write_dictd(tmp_path, "x", [("one", "first entry"), ("two", "second entry")])
    entries = list(C.dictd_entries(tmp_path / "x.index", tmp_path / "x.dict.dz"))
    assert entries == [("one", "first entry"), ("two", "second entry")]


def test_prompt_banks_never_include_heldout_audit_or_probes(tmp_path):
    data = fake_data(tmp_path)
    files = [p.relative_to(data).as_posix() for p in C.prompt_bank_files(data)]
    assert files == ["organisms/fruit/triggered_train.txt"]
    texts = [d.text for d in C.prompt_documents(data)]
    assert texts == ["Tell me about apples.", "What is a banana?"]


def test_build_corpus_splits_every_document_once(tmp_path):
    root, data = fake_root(tmp_path), fake_data(tmp_path)
    manifest = C.build_corpus(tmp_path / "corpus", root=root, data_dir=data, install=False)
    train = C.read_split(tmp_path / "corpus", "train")
    heldout = (
        C.read_split(tmp_path / "corpus", "heldout")
        if (tmp_path / "corpus" / "heldout.jsonl").stat().st_size
        else []
    )
    texts = [d.text for d in train + heldout]
    assert len(texts) == len(set(texts))
    sources = {d.source for d in train + heldout}
    assert sources == {"wordnet", "gcide", "jargon", "devil", "fortunes", "prompts"}
    assert all(d.split == "train" for d in train) and all(d.split == "heldout" for d in heldout)
    joined = "\n".join(texts)
    assert "SECRET" not in joined and "a cat drawn" not in joined
    assert "banana (noun): elongated crescent-shaped yellow fruit" in joined
    assert "1913 Webster" not in joined and 'Ap"ple' not in joined
    assert manifest["prompt_banks"] == ["organisms/fruit/triggered_train.txt"]
    counted = sum(s["docs"] for split in manifest["splits"].values() for s in split.values())
    assert counted == len(texts)
    # deterministic: a rebuild writes the same files
    C.build_corpus(tmp_path / "again", root=root, data_dir=data, install=False)
    for split in ("train", "heldout"):
        a = (tmp_path / "corpus" / f"{split}.jsonl").read_text()
        assert a == (tmp_path / "again" / f"{split}.jsonl").read_text()


def test_the_split_is_a_stable_hash_of_the_key():
    docs = [C.Document("wordnet", f"n{i:08d}", "x") for i in range(4000)]
    share = sum(d.split == "heldout" for d in docs) / len(docs)
    assert 0.03 < share < 0.07
    assert C.Document("wordnet", "n00000001", "other text").split == docs[1].split


def test_missing_sources_name_the_packages(tmp_path, monkeypatch):
    with pytest.raises(TriggerscopeError, match=r"wordnet-base.*apt-get install"):
        C.build_corpus(tmp_path / "c", root=tmp_path / "empty", data_dir=tmp_path, install=False)
    monkeypatch.setattr(C.shutil, "which", lambda _name: None)
    with pytest.raises(TriggerscopeError, match="sudo apt-get update && sudo apt-get install"):
        C.install_sources(tmp_path / "empty")


def test_read_split_accepts_txt_and_rejects_empty_or_broken_files(tmp_path):
    (tmp_path / "a.txt").write_text("one document\n\nanother one\n")
    assert [d.text for d in C.read_split(tmp_path / "a.txt")] == ["one document", "another one"]
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TriggerscopeError, match="is empty"):
        C.read_split(tmp_path / "empty.jsonl")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"no_text": 1}) + "\n")
    with pytest.raises(TriggerscopeError, match=r"bad\.jsonl:1"):
        C.read_split(tmp_path / "bad.jsonl")
    with pytest.raises(TriggerscopeError, match="does not exist"):
        C.read_split(tmp_path / "missing")


def test_sampling_order_is_a_seeded_weighted_permutation():
    docs = [C.Document("gcide", str(i), "g") for i in range(500)]
    docs += [C.Document("prompts", str(i), "p") for i in range(500)]
    order = C.sampling_order(docs, 3)
    assert sorted(order) == list(range(1000)) and order == C.sampling_order(docs, 3)
    assert order != C.sampling_order(docs, 4)
    first = [docs[i].source for i in order[:200]]
    assert first.count("prompts") > 150  # weight 8 vs 1


def test_sae_corpus_command_reports_a_built_corpus(tmp_path, capsys):
    from triggerscope.cli import run_cli

    root, data = fake_root(tmp_path), fake_data(tmp_path)
    C.build_corpus(tmp_path / "corpus", root=root, data_dir=data, install=False)
    assert run_cli(["sae", "corpus", "--out", str(tmp_path / "corpus")]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "wordnet" in out and str(tmp_path / "corpus") in out


def test_balanced_heldout_takes_each_source_in_turn(tmp_path):
    rows = [{"source": "gcide", "key": str(i), "text": f"gloss {i}"} for i in range(6)]
    rows += [{"source": "prompts", "key": "p", "text": "What is a plum?"}]
    (tmp_path / "heldout.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert C.balanced_heldout(tmp_path, 3) == ["gloss 0", "What is a plum?", "gloss 1"]
    assert len(C.balanced_heldout(tmp_path, 100)) == 7
