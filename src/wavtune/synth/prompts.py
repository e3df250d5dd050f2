"""What the synthetic corpus says: prompts of each kind from small grammars (pure, no audio).

A :class:`Prompt` holds the transcript written to the manifest (``text``) and the segments given
to the speech engine: English as written, Mandarin as tone-numbered pinyin for eSpeak NG's
``cmn-latn-pinyin`` voice (the ``cmn`` voice would read pinyin letters as English).

>>> import numpy as np
>>> p = make_prompt("codeswitch", np.random.default_rng(0))
>>> p.language, [s.language for s in p.segments][:1]
('mixed', ['zh'])
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Kind = Literal["digits", "commands", "sentences", "mandarin", "codeswitch"]
KINDS: tuple[Kind, ...] = ("digits", "commands", "sentences", "mandarin", "codeswitch")
SegmentLanguage = Literal["en", "zh"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MAX_DIGITS = 4

COMMANDS = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "forward", "backward", "open", "close", "play", "pause", "next", "previous",
    "volume up", "volume down", "lights on", "lights off",
)  # fmt: skip

# Hanzi word -> tone-numbered pinyin (5 = neutral tone), for every word the Mandarin grammars use.
PINYIN: Mapping[str, str] = {
    "我": "wo3", "你": "ni3", "他": "ta1", "我们": "wo3 men5", "他们": "ta1 men5",
    "老师": "lao3 shi1", "学生": "xue2 sheng1", "妈妈": "ma1 ma5", "朋友": "peng2 you5",
    "想": "xiang3", "喝": "he1", "吃": "chi1", "喜欢": "xi3 huan5", "去": "qu4", "有": "you3",
    "在": "zai4", "水": "shui3", "茶": "cha2", "咖啡": "ka1 fei1", "牛奶": "niu2 nai3",
    "米饭": "mi3 fan4", "面条": "mian4 tiao2", "苹果": "ping2 guo3", "音乐": "yin1 yue4",
    "电影": "dian4 ying3", "书": "shu1", "学校": "xue2 xiao4", "公司": "gong1 si1",
    "商店": "shang1 dian4", "医院": "yi1 yuan4", "北京": "bei3 jing1", "上海": "shang4 hai3",
    "今天": "jin1 tian1", "明天": "ming2 tian1", "昨天": "zuo2 tian1", "天气": "tian1 qi4",
    "很": "hen3", "好": "hao3", "冷": "leng3", "热": "re4", "忙": "mang2", "累": "lei4",
    "请": "qing3", "帮": "bang1", "一下": "yi2 xia4", "的": "de5", "了": "le5",
    "这个": "zhe4 ge5", "难": "nan2", "重要": "zhong4 yao4", "坏": "huai4",
}  # fmt: skip

_EN_SLOTS: Mapping[str, Sequence[str]] = {
    "SUBJ": ("the cat", "a dog", "my friend", "the teacher", "our neighbour", "the old man",
             "a small child", "the farmer", "my sister", "the pilot"),
    "VERB": ("sees", "likes", "finds", "carries", "paints", "wants", "buys", "sells", "moves"),
    "OBJ": ("a red ball", "the blue car", "an apple", "the green door", "a big box",
            "the new book", "some bread", "a warm coat", "the yellow kite", "a glass of water"),
    "WHERE": ("in the garden", "at the station", "near the river", "on the table",
              "under the bridge", "after lunch", "every morning", "before dinner"),
    "IMP": ("open", "close", "bring", "find", "take", "move", "clean", "paint"),
    "ADJ": ("happy", "tired", "late", "ready", "hungry", "busy", "quiet", "lucky"),
}  # fmt: skip
_EN_TEMPLATES = (
    "{SUBJ} {VERB} {OBJ}",
    "{SUBJ} {VERB} {OBJ} {WHERE}",
    "please {IMP} {OBJ}",
    "where is {OBJ}",
    "{SUBJ} is {ADJ} {WHERE}",
)

_ZH_SLOTS: Mapping[str, Sequence[str]] = {
    "S": ("我", "你", "他", "我们", "他们", "老师", "学生", "妈妈", "朋友"),
    "DRINK": ("水", "茶", "咖啡", "牛奶"),
    "FOOD": ("米饭", "面条", "苹果"),
    "LIKE": ("音乐", "电影", "书", "茶", "咖啡"),
    "PLACE": ("学校", "公司", "商店", "医院", "北京", "上海"),
    "DAY": ("今天", "明天", "昨天"),
    "WEATHER": ("好", "冷", "热"),
    "STATE": ("忙", "累", "好"),
    "QUALITY": ("难", "重要", "好"),
    # English words inside Mandarin sentences (codeswitch)
    "EN_DRINK": ("coffee", "tea", "milk", "juice", "latte"),
    "EN_EVENT": ("meeting", "exam", "class", "interview", "party"),
    "EN_THING": ("project", "report", "email", "app", "deadline"),
    "EN_PLACE": ("office", "hotel", "airport", "gym"),
    "EN_DEVICE": ("laptop", "phone", "printer", "camera"),
}  # fmt: skip
_ZH_TEMPLATES = (
    "{S} 想 喝 {DRINK}",
    "{S} 想 吃 {FOOD}",
    "{S} 喜欢 {LIKE}",
    "{S} {DAY} 去 {PLACE}",
    "{DAY} 天气 很 {WEATHER}",
    "{S} {DAY} 很 {STATE}",
)
_MIXED_TEMPLATES = (
    "{S} 想 喝 {EN_DRINK}",
    "{S} {DAY} 有 {EN_EVENT}",
    "这个 {EN_THING} 很 {QUALITY}",
    "{S} 在 {EN_PLACE}",
    "请 帮 我 check 一下 {EN_THING}",
    "我 的 {EN_DEVICE} 坏 了",
)

_SLOT = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Segment:
    """A stretch in one language, as the engine is to read it (English words, or pinyin)."""

    language: SegmentLanguage
    say: str


@dataclass(frozen=True)
class Prompt:
    """One utterance's words: the manifest transcript, how to say it, and its labels."""

    kind: Kind
    text: str  # transcript; words separated by single spaces (Mandarin: one word per token)
    language: Literal["en", "zh", "mixed"]
    segments: tuple[Segment, ...]
    labels: Mapping[str, str] = field(default_factory=dict)  # kind-specific, e.g. n_digits


def _fill(template: str, slots: Mapping[str, Sequence[str]], rng: np.random.Generator) -> str:
    return _SLOT.sub(
        lambda m: slots[m.group(1)][int(rng.integers(len(slots[m.group(1)])))], template
    )


def say_words(words: Sequence[str]) -> tuple[Segment, ...]:
    """Group transcript words into runs of one language: ASCII words are English, the rest
    Mandarin (spelled in pinyin). Raises KeyError naming a Hanzi word that has no pinyin."""
    segments: list[Segment] = []
    for word in words:
        language: SegmentLanguage = "en" if word.isascii() else "zh"
        if language == "zh" and word not in PINYIN:
            raise KeyError(f"no pinyin for {word!r}; add it to wavtune.synth.prompts.PINYIN")
        say = word if language == "en" else PINYIN[word]
        if segments and segments[-1].language == language:
            say = f"{segments[-1].say} {say}"
            segments.pop()
        segments.append(Segment(language, say))
    return tuple(segments)


def make_prompt(kind: Kind, rng: np.random.Generator) -> Prompt:
    """Draw one prompt of ``kind`` from its grammar with ``rng``."""
    if kind == "digits":
        n = int(rng.integers(1, MAX_DIGITS + 1))
        text = " ".join(DIGIT_WORDS[int(d)] for d in rng.integers(0, 10, size=n))
        return Prompt(kind, text, "en", (Segment("en", text),), {"n_digits": str(n)})
    if kind == "commands":
        text = COMMANDS[int(rng.integers(len(COMMANDS)))]
        return Prompt(kind, text, "en", (Segment("en", text),), {"command": text})
    if kind == "sentences":
        text = _fill(_EN_TEMPLATES[int(rng.integers(len(_EN_TEMPLATES)))], _EN_SLOTS, rng)
        return Prompt(kind, text, "en", (Segment("en", text),))
    if kind in ("mandarin", "codeswitch"):
        templates = _ZH_TEMPLATES if kind == "mandarin" else _MIXED_TEMPLATES
        text = _fill(templates[int(rng.integers(len(templates)))], _ZH_SLOTS, rng)
        segments = say_words(text.split())
        language: Literal["zh", "mixed"] = "zh" if len(segments) == 1 else "mixed"
        return Prompt(kind, text, language, segments)
    raise ValueError(f"unknown synthetic speech kind {kind!r}; use one of {', '.join(KINDS)}")


def grammar_words() -> set[str]:
    """Every Hanzi word the Mandarin grammars can produce (each must have a pinyin entry)."""
    words: set[str] = set()
    for template in (*_ZH_TEMPLATES, *_MIXED_TEMPLATES):
        words.update(w for w in _SLOT.sub("", template).split() if not w.isascii())
    words.update(w for values in _ZH_SLOTS.values() for w in values if not w.isascii())
    return words
