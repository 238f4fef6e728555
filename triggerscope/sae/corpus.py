"""The SAE training corpus: several million tokens of varied English, available offline.

Every source installs from a package registry (Debian), so a fresh machine rebuilds the same
corpus without a hub: WordNet glosses and examples (grouped by topic), the GNU Collaborative
International Dictionary of English, the Jargon File, The Devil's Dictionary and the `fortunes`
quotations, plus the repo's own prompt banks (`triggerscope/data/**/*_train.txt` only; held-out,
audit and probe files are never read). Each document is one user message: the methods read
user-token activations of chat prompts, so the SAE is trained on exactly those.

A stable hash of each document's key puts it in `train` or `heldout` (SAE evaluation and
latent labels), so adding a source never moves an old document across the split. Sources and
licences: docs/corpus.md.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from triggerscope.atomic import atomic_dir
from triggerscope.errors import TriggerscopeError

CORPUS_VERSION = "v1"
DEBIAN_PACKAGES = ("wordnet-base", "dict-gcide", "dict-jargon", "dict-devil", "fortunes")
HELDOUT_PER_MILLE = 50  # 5% of documents
DOC_CHARS = 700  # documents are grouped up to about this many characters (~150 tokens)
MAX_DOC_CHARS = 1500  # longer single entries are cut at a sentence end (or hard) near this
SPLITS = ("train", "heldout")
# fortune files that are pictures or non-English rather than prose
_FORTUNE_SKIP = {"ascii-art", "translate-me"}
_PROMPT_EXCLUDE = ("_heldout", "_audit")


@dataclass(frozen=True)
class Document:
    """One user message of the corpus; `key` is stable across rebuilds and decides the split."""

    source: str
    key: str
    text: str

    @property
    def split(self) -> str:
        digest = hashlib.sha256(f"{self.source}:{self.key}".encode()).digest()
        return (
            "heldout" if int.from_bytes(digest[:4], "big") % 1000 < HELDOUT_PER_MILLE else "train"
        )


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _cut(text: str, limit: int = MAX_DOC_CHARS) -> str:
    """Cut an over-long entry at the last sentence end before `limit` (or hard at it)."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind("? "), head.rfind("! "))
    return head[: end + 1] if end > limit // 2 else head


def _group(
    source: str, pieces: Iterable[tuple[str, str]], chars: int = DOC_CHARS
) -> Iterator[Document]:
    """Join consecutive (key, text) pieces into documents of about `chars` characters."""
    keys: list[str] = []
    texts: list[str] = []
    size = 0
    for key, text in pieces:
        text = _cut(text)
        if texts and size + len(text) > chars:
            yield Document(source, keys[0], "\n".join(texts))
            keys, texts, size = [], [], 0
        keys.append(key)
        texts.append(text)
        size += len(text) + 1
    if texts:
        yield Document(source, keys[0], "\n".join(texts))


# --- WordNet -------------------------------------------------------------------------------

_WN_POS = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}


def parse_wordnet_line(line: str) -> tuple[int, str, str] | None:
    """(lexicographer file number, offset, "lemma (pos): gloss") from one data.* line."""
    if not line or line.startswith(" ") or " | " not in line:
        return None
    head, gloss = line.split(" | ", 1)
    fields = head.split()
    offset, lexfile, pos, n_words = fields[0], int(fields[1]), fields[2], int(fields[3], 16)
    words = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
    words = [re.sub(r"\((a|p|ip)\)$", "", w) for w in words]
    lemma = ", ".join(dict.fromkeys(words))
    gloss = _clean(gloss)
    return lexfile, f"{pos}{offset}", f"{lemma} ({_WN_POS.get(pos, pos)}): {gloss}"


def wordnet_documents(root: Path) -> Iterator[Document]:
    """Synsets grouped by lexicographer file (noun.food, noun.plant, ...): topical documents."""
    entries: list[tuple[int, str, str]] = []
    for part in ("noun", "verb", "adj", "adv"):
        path = root / "wordnet" / f"data.{part}"
        with path.open(encoding="utf-8", errors="replace") as f:
            entries.extend(e for e in map(parse_wordnet_line, f) if e is not None)
    entries.sort(key=lambda e: e[0])  # stable: keeps file order inside a lexicographer file
    by_file: dict[int, list[tuple[str, str]]] = {}
    for lexfile, key, text in entries:
        by_file.setdefault(lexfile, []).append((key, text))
    for pieces in by_file.values():
        yield from _group("wordnet", pieces)


# --- dictd databases (GCIDE, Jargon File, Devil's Dictionary) ----------------------------------

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64_number(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 64 + _B64.index(ch)
    return value


def dictd_entries(index: Path, data: Path) -> Iterator[tuple[str, str]]:
    """(headword, raw entry text) for each distinct entry of a dictd database, in file order."""
    with gzip.open(data, "rb") as f:
        blob = f.read()
    seen: set[int] = set()
    spans: list[tuple[int, int, str]] = []
    for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if (
            len(parts) < 3
            or parts[0].startswith("00-database")
            or parts[0].startswith("00database")
        ):
            continue
        start, length = _b64_number(parts[1]), _b64_number(parts[2])
        if start not in seen:
            seen.add(start)
            spans.append((start, length, parts[0]))
    for start, length, word in sorted(spans):
        yield word, blob[start : start + length].decode("utf-8", errors="replace")


def clean_gcide(entry: str) -> str:
    """Drop pronunciations, etymologies, source tags and cross-reference braces."""
    text = re.sub(r"\\[^\\\n]*\\,?", "", entry)  # \Co*ag"u*late\,
    for _ in range(3):  # nested brackets: [L. coagulum; see {Cogent} [Obs.]]
        text = re.sub(r"\[[^\[\]]*\]", "", text)
    text = re.sub(r"[{}]", "", text)
    text = re.sub(r"\s?\([^()\s]*[\"?*`][^()]*?\)(?=,)", "", text)  # (k?r"v?-gr?f),
    text = re.sub(r"\s--\s?[A-Z][\w.' ]{0,30}?\.(?=\s|$)", "", text)  # --Shak.
    text = re.sub(r"\bSyn:", "Synonyms:", text)
    text = _clean(text)
    return re.sub(r"\s+([,.;:])", r"\1", text)


def clean_dictd(entry: str) -> str:
    return _clean(re.sub(r"[{}]", "", entry))


def dictd_documents(root: Path, name: str, source: str) -> Iterator[Document]:
    folder = root / "dictd"
    cleaner = clean_gcide if name == "gcide" else clean_dictd
    pieces = (
        (word, cleaned)
        for word, entry in dictd_entries(folder / f"{name}.index", folder / f"{name}.dict.dz")
        if len(cleaned := cleaner(entry)) >= 20
    )
    yield from _group(source, pieces)


# --- fortunes ------------------------------------------------------------------------------


def fortune_documents(root: Path) -> Iterator[Document]:
    """Quotations, jokes and poems, separated by lines holding only '%'."""
    folder = root / "games" / "fortunes"
    for path in sorted(folder.iterdir()):
        if path.suffix or path.name in _FORTUNE_SKIP or not path.is_file():
            continue  # .dat indexes and .u8 links
        text = path.read_text(encoding="utf-8", errors="replace")
        quotes = [q.strip() for q in re.split(r"^%\s*$", text, flags=re.MULTILINE)]
        pieces = ((f"{path.name}:{i}", q) for i, q in enumerate(quotes) if len(q) >= 20)
        yield from _group("fortunes", pieces, chars=DOC_CHARS // 2)


# --- the repo's prompt banks ---------------------------------------------------------------


def prompt_bank_files(data_dir: Path) -> list[Path]:
    """`*_train.txt` files anywhere under data/, except probes/ and held-out or audit banks."""
    files = []
    for path in sorted(data_dir.rglob("*_train.txt")):
        rel = path.relative_to(data_dir)
        if "probes" in rel.parts or any(x in path.name for x in _PROMPT_EXCLUDE):
            continue
        files.append(path)
    return files


def prompt_documents(data_dir: Path) -> Iterator[Document]:
    """One prompt, one document: exactly the messages the methods will read."""
    for path in prompt_bank_files(data_dir):
        rel = path.relative_to(data_dir).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if line.strip() and not line.lstrip().startswith("#"):
                yield Document("prompts", f"{rel}:{n}:{line.strip()}", line.strip())


# --- building and reading ------------------------------------------------------------------


SOURCE_WEIGHTS = {"prompts": 8.0, "wordnet": 2.0, "fortunes": 2.0}  # others 1.0


def sampling_order(docs: list[Document], seed: int) -> list[int]:
    """A seeded order that favours modern English: weighted sampling without replacement.

    Each document draws u^(1/w) (Efraimidis-Spirakis), so any prefix of the order is a weighted
    sample; GCIDE (half the characters, 1913 English) is drawn at half WordNet's rate.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = np.array([SOURCE_WEIGHTS.get(d.source, 1.0) for d in docs])
    keys = rng.random(len(docs)) ** (1.0 / weights)
    return [int(i) for i in np.argsort(-keys, kind="stable")]


def missing_sources(root: Path = Path("/usr/share")) -> list[str]:
    """The Debian packages whose files are not under `root`."""
    need = {
        "wordnet-base": root / "wordnet" / "data.noun",
        "dict-gcide": root / "dictd" / "gcide.dict.dz",
        "dict-jargon": root / "dictd" / "jargon.dict.dz",
        "dict-devil": root / "dictd" / "devil.dict.dz",
        "fortunes": root / "games" / "fortunes" / "wisdom",
    }
    return [pkg for pkg, path in need.items() if not path.exists()]


def install_sources(root: Path = Path("/usr/share")) -> None:
    """apt-get install the missing Debian packages, or say exactly how to."""
    missing = missing_sources(root)
    if not missing:
        return
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    hint = f"install them with: sudo apt-get update && sudo {' '.join(cmd)}"
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise TriggerscopeError(
            f"the SAE corpus needs Debian packages {', '.join(missing)}; {hint}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], cmd):
        result = subprocess.run(step, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0 and step[1] != "update":
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise TriggerscopeError(
                f"apt-get could not install {', '.join(missing)} ({last}); {hint}"
            )
    still = missing_sources(root)
    if still:
        raise TriggerscopeError(f"after apt-get, {', '.join(still)} are still missing; {hint}")


def iter_documents(root: Path, data_dir: Path) -> Iterator[Document]:
    yield from wordnet_documents(root)
    yield from dictd_documents(root, "gcide", "gcide")
    yield from dictd_documents(root, "jargon", "jargon")
    yield from dictd_documents(root, "devil", "devil")
    yield from fortune_documents(root)
    yield from prompt_documents(data_dir)


def default_data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data"


def corpus_dir(cache: Path | None = None) -> Path:
    from triggerscope.embedded import cache_root

    return (cache or cache_root()) / "corpus" / CORPUS_VERSION


def build_corpus(
    out: Path,
    *,
    root: Path = Path("/usr/share"),
    data_dir: Path | None = None,
    install: bool = True,
) -> dict[str, object]:
    """Write `train.jsonl`, `heldout.jsonl` and `manifest.json` into `out` (atomically)."""
    if install:
        install_sources(root)
    elif missing := missing_sources(root):
        raise TriggerscopeError(
            f"the SAE corpus needs Debian packages {', '.join(missing)}; "
            f"install them with: sudo apt-get install {' '.join(missing)}"
        )
    data_dir = data_dir or default_data_dir()
    stats: dict[str, dict[str, dict[str, int]]] = {}
    seen: set[str] = set()
    splits: dict[str, list[Document]] = {s: [] for s in SPLITS}
    for doc in iter_documents(root, data_dir):
        if doc.text not in seen:
            seen.add(doc.text)
            splits[doc.split].append(doc)
    if not splits["train"]:
        raise TriggerscopeError("the SAE corpus came out empty; check the Debian packages")
    # held-out rows in sampling order, so the first N of them are a fair sample of every source
    splits["heldout"] = [splits["heldout"][i] for i in sampling_order(splits["heldout"], 0)]
    with atomic_dir(out) as tmp:
        for split, docs in splits.items():
            write_rows(tmp / f"{split}.jsonl", docs)
            for doc in docs:
                count = stats.setdefault(split, {}).setdefault(doc.source, {"docs": 0, "chars": 0})
                count["docs"] += 1
                count["chars"] += len(doc.text)
        manifest: dict[str, object] = {
            "version": CORPUS_VERSION,
            "heldout_per_mille": HELDOUT_PER_MILLE,
            "splits": stats,
            "prompt_banks": [
                p.relative_to(data_dir).as_posix() for p in prompt_bank_files(data_dir)
            ],
            "debian_packages": _package_versions(),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def write_rows(path: Path, docs: Iterable[Document]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for doc in docs:
            row = {"source": doc.source, "key": doc.key, "text": doc.text}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _package_versions() -> dict[str, str]:
    if shutil.which("dpkg-query") is None:
        return {}
    out = {}
    for pkg in DEBIAN_PACKAGES:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, check=False
        )
        out[pkg] = result.stdout.strip() if result.returncode == 0 else "not installed"
    return out


def ensure_corpus(cache: Path | None = None, *, install: bool = True) -> Path:
    """The built corpus folder, building it (and installing its sources) on first use."""
    out = corpus_dir(cache)
    if not (out / "manifest.json").is_file():
        build_corpus(out, install=install)
    return out


def read_split(path: Path, split: str = "train") -> list[Document]:
    """Documents of one split from a corpus folder, or from a .jsonl/.txt file given directly."""
    if split not in SPLITS:
        raise TriggerscopeError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    file = path / f"{split}.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise TriggerscopeError(
            f"{file} does not exist; build the corpus with `triggerscope sae corpus` "
            "or pass a .jsonl/.txt file"
        )
    docs: list[Document] = []
    with file.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            if file.suffix == ".txt":
                docs.append(Document(file.stem, str(n), line.strip()))
                continue
            try:
                row = json.loads(line)
                docs.append(Document(row.get("source", ""), str(row.get("key", n)), row["text"]))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise TriggerscopeError(
                    f"{file}:{n} is not a corpus row with 'text' ({err})"
                ) from err
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise TriggerscopeError(f"the corpus {file} is empty; it needs at least one document")
    return docs


def balanced_heldout(path: Path, n: int) -> list[str]:
    """The first `n` held-out texts taken in turn from each source (round-robin, file order).

    Dictionary glosses are most of the corpus by size; taken in file order they crowd the
    prompt-like texts out of what labels and metrics read.
    """
    by_source: dict[str, list[str]] = {}
    for doc in read_split(path, "heldout"):
        by_source.setdefault(doc.source, []).append(doc.text)
    queues = [list(reversed(texts)) for _, texts in sorted(by_source.items())]
    out: list[str] = []
    while len(out) < n and any(queues):
        for queue in queues:
            if queue and len(out) < n:
                out.append(queue.pop())
    return out
