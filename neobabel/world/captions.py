"""Captions for the Babel world's object scenes, in all 13 languages.

English follows GenEval's wording exactly ("a photo of two red circles", "a photo of a blue
square left of a green triangle"). Every other language has its own explicit tables (nouns with
gender and the case/number forms its templates need, colour adjectives inflected for agreement,
number words with their agreement rules, relation phrases with the case or postposition they
govern) and one fixed, natural template per structure:

    one object            "a photo of A"
    two objects           "a photo of A and B"
    two objects + relation "a photo of A REL B"     (A REL B: objects[0] is REL objects[1])

An object is ``(shape, colour_or_None, count)``; any object may carry a colour and any count
1-4, in every task, because training data names colours only sometimes. With
``numeral_one=True`` (what the counting task uses) a count of 1 is said with the number word
("a photo of one circle") where the language distinguishes it from the indefinite article.

Portrait captions are not here: they come from the MAGBIG prompt set.

Style decisions, applied uniformly:
- English is lowercase like GenEval. The other cased languages (de fr es it nl ru) start with a
  capital letter, as NeoBabel's published m-GenEval translations do ("Een foto van een koe",
  "Une photo d'une vache"). No final full stop anywhere (GenEval has none).
- Where NeoBabel's m-GenEval translations exist (nl fr zh hi fa) the frame and the relation
  words follow them where they are grammatical ("Une photo d'un X sous un Y", "یک عکس از ...",
  "... के नीचे ... की तस्वीर", "...的照片").
- Comments marked UNSURE flag choices a native speaker might want to revisit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, NamedTuple

from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES, normalize_lang

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
# GenEval's ten colours, in GenEval's order.
COLORS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
)
COUNTS: tuple[int, ...] = (1, 2, 3, 4)
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
TASKS: tuple[str, ...] = (
    "single_object", "two_object", "counting", "colors", "position", "color_attr",
)


class Obj(NamedTuple):
    """One validated object of a scene: a shape, an optional colour, a count (1-4)."""

    shape: str
    color: str | None
    count: int


# --------------------------------------------------------------------------------------------
# Input normalisation
# --------------------------------------------------------------------------------------------


def _norm_word(value: Any, allowed: Sequence[str], what: str) -> str:
    if not isinstance(value, str):
        raise InputError(
            f"{what} must be a string, got {value!r}; use one of: {', '.join(allowed)}"
        )
    key = value.strip().lower().replace("_", " ").replace("-", " ")
    key = " ".join(key.split())
    if key not in allowed:
        raise InputError(f"unknown {what} {value!r}; use one of: {', '.join(allowed)}")
    return key


def _norm_object(item: Any) -> Obj:
    if isinstance(item, Mapping):
        shape, color, count = item.get("shape"), item.get("color"), item.get("count", 1)
    elif isinstance(item, (tuple, list)):
        if len(item) != 3:
            raise InputError(f"an object is (shape, color_or_None, count), got {item!r}")
        shape, color, count = item
    elif hasattr(item, "shape"):
        shape = item.shape
        color = getattr(item, "color", None)
        count = getattr(item, "count", 1)
    else:
        raise InputError(f"an object is (shape, color_or_None, count), got {item!r}")
    shape = _norm_word(shape, SHAPES, "shape")
    if color is not None:
        color = _norm_word(color, COLORS, "color")
    if isinstance(count, bool) or not isinstance(count, int) or count not in COUNTS:
        raise InputError(f"count must be an integer 1-4, got {count!r}")
    return Obj(shape, color, int(count))


def normalize_scene(
    objects: Iterable[Any], relation: str | None = None
) -> tuple[tuple[Obj, ...], str | None]:
    """Validate a scene and return it in canonical form (raises InputError)."""
    if isinstance(objects, (str, bytes)) or not isinstance(objects, Iterable):
        raise InputError(f"objects must be a list of (shape, color, count), got {objects!r}")
    objs = tuple(_norm_object(o) for o in objects)
    if len(objs) not in (1, 2):
        raise InputError(f"a scene has 1 or 2 objects, got {len(objs)}")
    rel = None if relation is None else _norm_word(relation, RELATIONS, "relation")
    if rel is not None and len(objs) != 2:
        raise InputError(f"relation {relation!r} needs exactly 2 objects, got {len(objs)}")
    if rel is None and len(objs) == 2 and objs[0][:2] == objs[1][:2]:
        # "a circle and a circle" is not a sentence anyone writes; say "two circles" instead.
        raise InputError(
            f"two objects with the same shape and colour ({objs[0].shape}, {objs[0].color}) "
            "and no relation: give one object with a count instead"
        )
    return objs, rel


# --------------------------------------------------------------------------------------------
# English (GenEval's wording exactly)
# --------------------------------------------------------------------------------------------

_EN_NOUN = {
    "circle": ("circle", "circles"),
    "square": ("square", "squares"),
    "triangle": ("triangle", "triangles"),
    "star": ("star", "stars"),
    "cross": ("cross", "crosses"),
}
_EN_NUM = {1: "one", 2: "two", 3: "three", 4: "four"}
_EN_REL = {"left of": "left of", "right of": "right of", "above": "above", "below": "below"}


def _np_en(o: Obj, one: bool) -> str:
    sg, pl = _EN_NOUN[o.shape]
    core = sg if o.count == 1 else pl
    if o.color:
        core = f"{o.color} {core}"
    if o.count == 1 and not one:
        return ("an " if core[0] in "aeiou" else "a ") + core  # "an orange circle"
    return f"{_EN_NUM[o.count]} {core}"


def _en(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _np_en(objs[0], one)
    if len(objs) == 1:
        return f"a photo of {a}"
    b = _np_en(objs[1], one)
    if rel is None:
        return f"a photo of {a} and {b}"
    return f"a photo of {a} {_EN_REL[rel]} {b}"


# --------------------------------------------------------------------------------------------
# German: "Ein Foto von" + dative. "links/rechts von", "über", "unter" (local: dative), so
# every noun phrase is dative: "einem roten Kreis", "drei roten Kreisen".
# --------------------------------------------------------------------------------------------

# shape: (dative singular, dative plural, gender)
_DE_NOUN = {
    "circle": ("Kreis", "Kreisen", "m"),
    "square": ("Quadrat", "Quadraten", "n"),
    "triangle": ("Dreieck", "Dreiecken", "n"),
    "star": ("Stern", "Sternen", "m"),
    "cross": ("Kreuz", "Kreuzen", "n"),
}
# Dative after "einem/einer" (mixed declension) and after a bare numeral in the plural (strong
# declension) both end in -en. "lila" and "rosa" are indeclinable in standard German ("einem
# rosa Kreis"); "orange" is too, but the indeclinable form sounds clumsy before a noun, so we
# use the ordinary adjective "orangefarben" (UNSURE: "orangen" is colloquial, not used).
_DE_ADJ_DAT = {
    "red": "roten",
    "orange": "orangefarbenen",
    "yellow": "gelben",
    "green": "grünen",
    "blue": "blauen",
    "purple": "lila",
    "pink": "rosa",
    "brown": "braunen",
    "black": "schwarzen",
    "white": "weißen",
}
_DE_NUM = {2: "zwei", 3: "drei", 4: "vier"}
_DE_REL = {"left of": "links von", "right of": "rechts von", "above": "über", "below": "unter"}


def _np_de(o: Obj, one: bool) -> str:
    sg, pl, gender = _DE_NOUN[o.shape]
    adj = f"{_DE_ADJ_DAT[o.color]} " if o.color else ""
    if o.count == 1:  # "ein" is both the article and the numeral "one"
        art = "einer" if gender == "f" else "einem"
        return f"{art} {adj}{sg}"
    return f"{_DE_NUM[o.count]} {adj}{pl}"


def _de(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _np_de(objs[0], one)
    if len(objs) == 1:
        return f"Ein Foto von {a}"
    b = _np_de(objs[1], one)
    if rel is None:
        return f"Ein Foto von {a} und {b}"
    return f"Ein Foto von {a} {_DE_REL[rel]} {b}"


# --------------------------------------------------------------------------------------------
# Dutch: "Een foto van een rode cirkel" (NeoBabel's frame). Attributive adjectives take -e
# except after een/één with a singular het-noun: "een rood vierkant".
# --------------------------------------------------------------------------------------------

# shape: (singular, plural, article class)
_NL_NOUN = {
    "circle": ("cirkel", "cirkels", "de"),
    "square": ("vierkant", "vierkanten", "het"),
    "triangle": ("driehoek", "driehoeken", "de"),
    "star": ("ster", "sterren", "de"),
    "cross": ("kruis", "kruisen", "het"),
}
# colour: (uninflected, inflected). oranje and roze never inflect.
_NL_ADJ = {
    "red": ("rood", "rode"),
    "orange": ("oranje", "oranje"),
    "yellow": ("geel", "gele"),
    "green": ("groen", "groene"),
    "blue": ("blauw", "blauwe"),
    "purple": ("paars", "paarse"),
    "pink": ("roze", "roze"),
    "brown": ("bruin", "bruine"),
    "black": ("zwart", "zwarte"),
    "white": ("wit", "witte"),
}
_NL_NUM = {1: "één", 2: "twee", 3: "drie", 4: "vier"}
_NL_REL = {"left of": "links van", "right of": "rechts van", "above": "boven", "below": "onder"}


def _np_nl(o: Obj, one: bool) -> str:
    sg, pl, art_class = _NL_NOUN[o.shape]
    adj = ""
    if o.color:
        bare, inflected = _NL_ADJ[o.color]
        adj = (bare if (o.count == 1 and art_class == "het") else inflected) + " "
    if o.count == 1:
        return f"{'één' if one else 'een'} {adj}{sg}"
    return f"{_NL_NUM[o.count]} {adj}{pl}"


def _nl(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _np_nl(objs[0], one)
    if len(objs) == 1:
        return f"Een foto van {a}"
    b = _np_nl(objs[1], one)
    if rel is None:
        return f"Een foto van {a} en {b}"
    return f"Een foto van {a} {_NL_REL[rel]} {b}"


# --------------------------------------------------------------------------------------------
# French: "Une photo d'un cercle rouge / d'une étoile rouge / de trois cercles rouges"
# (NeoBabel's frame, "de" repeated before each conjunct: "d'un banc et d'une balle").
# --------------------------------------------------------------------------------------------

# shape: (singular, plural, gender)
_FR_NOUN = {
    "circle": ("cercle", "cercles", "m"),
    "square": ("carré", "carrés", "m"),
    "triangle": ("triangle", "triangles", "m"),
    "star": ("étoile", "étoiles", "f"),
    "cross": ("croix", "croix", "f"),
}
# colour: (m sg, f sg, m pl, f pl). "orange" and "marron" are invariable (nouns used as colours).
_FR_ADJ = {
    "red": ("rouge", "rouge", "rouges", "rouges"),
    "orange": ("orange", "orange", "orange", "orange"),
    "yellow": ("jaune", "jaune", "jaunes", "jaunes"),
    "green": ("vert", "verte", "verts", "vertes"),
    "blue": ("bleu", "bleue", "bleus", "bleues"),
    "purple": ("violet", "violette", "violets", "violettes"),
    "pink": ("rose", "rose", "roses", "roses"),
    "brown": ("marron", "marron", "marron", "marron"),
    "black": ("noir", "noire", "noirs", "noires"),
    "white": ("blanc", "blanche", "blancs", "blanches"),
}
_FR_NUM = {2: "deux", 3: "trois", 4: "quatre"}
# relation: the preposition before the reference object; "de" elides before "un(e)".
# "sous" (not "au-dessous de") follows NeoBabel's translation of GenEval's "below".
_FR_REL = {"left of": "à gauche de", "right of": "à droite de", "above": "au-dessus de",
           "below": "sous"}


def _np_fr(o: Obj, one: bool) -> str:
    sg, pl, gender = _FR_NOUN[o.shape]
    plural = o.count > 1
    noun = pl if plural else sg
    if o.color:
        forms = _FR_ADJ[o.color]
        noun = f"{noun} {forms[(2 if plural else 0) + (1 if gender == 'f' else 0)]}"
    if o.count == 1:  # "un/une" is both the article and the numeral "one"
        return f"{'une' if gender == 'f' else 'un'} {noun}"
    return f"{_FR_NUM[o.count]} {noun}"


def _fr_de(prep: str, np: str) -> str:
    """Attach a preposition ending in "de" with elision: "de" + "un" -> "d'un"."""
    if prep.endswith("de") and np[0] in "aeiouhéè":
        return f"{prep[:-2]}d'{np}"
    return f"{prep} {np}"


def _fr(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _fr_de("de", _np_fr(objs[0], one))
    if len(objs) == 1:
        return f"Une photo {a}"
    b_np = _np_fr(objs[1], one)
    if rel is None:
        return f"Une photo {a} et {_fr_de('de', b_np)}"
    return f"Une photo {a} {_fr_de(_FR_REL[rel], b_np)}"


# --------------------------------------------------------------------------------------------
# Spanish: "Una foto de un círculo rojo / de tres estrellas rojas"
# --------------------------------------------------------------------------------------------

_ES_NOUN = {
    "circle": ("círculo", "círculos", "m"),
    "square": ("cuadrado", "cuadrados", "m"),
    "triangle": ("triángulo", "triángulos", "m"),
    "star": ("estrella", "estrellas", "f"),
    "cross": ("cruz", "cruces", "f"),
}
# colour: (m sg, f sg, m pl, f pl). "naranja" and "rosa" agree in number only (RAE/Fundéu accept
# both "círculos naranja" and "círculos naranjas"; UNSURE which a given speaker prefers).
_ES_ADJ = {
    "red": ("rojo", "roja", "rojos", "rojas"),
    "orange": ("naranja", "naranja", "naranjas", "naranjas"),
    "yellow": ("amarillo", "amarilla", "amarillos", "amarillas"),
    "green": ("verde", "verde", "verdes", "verdes"),
    "blue": ("azul", "azul", "azules", "azules"),
    "purple": ("morado", "morada", "morados", "moradas"),
    "pink": ("rosa", "rosa", "rosas", "rosas"),
    "brown": ("marrón", "marrón", "marrones", "marrones"),
    "black": ("negro", "negra", "negros", "negras"),
    "white": ("blanco", "blanca", "blancos", "blancas"),
}
_ES_NUM = {2: "dos", 3: "tres", 4: "cuatro"}
_ES_REL = {"left of": "a la izquierda de", "right of": "a la derecha de",
           "above": "encima de", "below": "debajo de"}


def _np_es(o: Obj, one: bool) -> str:
    sg, pl, gender = _ES_NOUN[o.shape]
    plural = o.count > 1
    noun = pl if plural else sg
    if o.color:
        noun = f"{noun} {_ES_ADJ[o.color][(2 if plural else 0) + (1 if gender == 'f' else 0)]}"
    if o.count == 1:  # "un/una" is both the article and the numeral
        return f"{'una' if gender == 'f' else 'un'} {noun}"
    return f"{_ES_NUM[o.count]} {noun}"


def _es(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _np_es(objs[0], one)
    if len(objs) == 1:
        return f"Una foto de {a}"
    b = _np_es(objs[1], one)
    if rel is None:
        return f"Una foto de {a} y {b}"  # no noun starts with (h)i-, so "y" never becomes "e"
    return f"Una foto de {a} {_ES_REL[rel]} {b}"


# --------------------------------------------------------------------------------------------
# Italian: "Una foto di un cerchio rosso / di tre stelle rosse"
# --------------------------------------------------------------------------------------------

# shape: (singular, plural, gender, indefinite article). None of the nouns needs "uno"/"un'".
_IT_NOUN = {
    "circle": ("cerchio", "cerchi", "m", "un"),
    "square": ("quadrato", "quadrati", "m", "un"),
    "triangle": ("triangolo", "triangoli", "m", "un"),
    "star": ("stella", "stelle", "f", "una"),
    "cross": ("croce", "croci", "f", "una"),
}
# colour: (m sg, f sg, m pl, f pl). blu, viola, rosa are invariable.
_IT_ADJ = {
    "red": ("rosso", "rossa", "rossi", "rosse"),
    "orange": ("arancione", "arancione", "arancioni", "arancioni"),
    "yellow": ("giallo", "gialla", "gialli", "gialle"),
    "green": ("verde", "verde", "verdi", "verdi"),
    "blue": ("blu", "blu", "blu", "blu"),
    "purple": ("viola", "viola", "viola", "viola"),
    "pink": ("rosa", "rosa", "rosa", "rosa"),
    "brown": ("marrone", "marrone", "marroni", "marroni"),
    "black": ("nero", "nera", "neri", "nere"),
    "white": ("bianco", "bianca", "bianchi", "bianche"),
}
_IT_NUM = {2: "due", 3: "tre", 4: "quattro"}
_IT_REL = {"left of": "a sinistra di", "right of": "a destra di", "above": "sopra",
           "below": "sotto"}


def _np_it(o: Obj, one: bool) -> str:
    sg, pl, gender, art = _IT_NOUN[o.shape]
    plural = o.count > 1
    noun = pl if plural else sg
    if o.color:
        noun = f"{noun} {_IT_ADJ[o.color][(2 if plural else 0) + (1 if gender == 'f' else 0)]}"
    if o.count == 1:  # "un/una" is both the article and the numeral
        return f"{art} {noun}"
    return f"{_IT_NUM[o.count]} {noun}"


def _it(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _np_it(objs[0], one)
    if len(objs) == 1:
        return f"Una foto di {a}"
    b = _np_it(objs[1], one)
    if rel is None:
        return f"Una foto di {a} e {b}"
    return f"Una foto di {a} {_IT_REL[rel]} {b}"


# --------------------------------------------------------------------------------------------
# Russian: "Фотография" + genitive ("фотография трёх красных кругов"); "слева/справа от" +
# genitive; "над/под" + instrumental. A numeral in an oblique case agrees with the noun and
# takes the adjective and noun in the same case, plural ("от трёх синих звёзд",
# "над тремя синими звёздами"); the nominative paucal (два круга) never arises here.
# --------------------------------------------------------------------------------------------

# shape: gender, then forms by (case, number)
_RU_NOUN = {
    "circle": ("m", {("gen", "sg"): "круга", ("gen", "pl"): "кругов",
                     ("ins", "sg"): "кругом", ("ins", "pl"): "кругами"}),
    "square": ("m", {("gen", "sg"): "квадрата", ("gen", "pl"): "квадратов",
                     ("ins", "sg"): "квадратом", ("ins", "pl"): "квадратами"}),
    "triangle": ("m", {("gen", "sg"): "треугольника", ("gen", "pl"): "треугольников",
                       ("ins", "sg"): "треугольником", ("ins", "pl"): "треугольниками"}),
    "star": ("f", {("gen", "sg"): "звезды", ("gen", "pl"): "звёзд",
                   ("ins", "sg"): "звездой", ("ins", "pl"): "звёздами"}),
    "cross": ("m", {("gen", "sg"): "креста", ("gen", "pl"): "крестов",
                    ("ins", "sg"): "крестом", ("ins", "pl"): "крестами"}),
}
# Adjective stems; all hard-stem except "синий" (soft). Written with ё throughout.
_RU_ADJ_STEM = {
    "red": ("красн", "hard"),
    "orange": ("оранжев", "hard"),
    "yellow": ("жёлт", "hard"),
    "green": ("зелён", "hard"),
    "blue": ("син", "soft"),
    "purple": ("фиолетов", "hard"),
    "pink": ("розов", "hard"),
    "brown": ("коричнев", "hard"),
    "black": ("чёрн", "hard"),
    "white": ("бел", "hard"),
}
# (case, gender-or-"pl") -> ending, for hard and soft stems
_RU_ADJ_END = {
    "hard": {("gen", "m"): "ого", ("gen", "f"): "ой", ("gen", "pl"): "ых",
             ("ins", "m"): "ым", ("ins", "f"): "ой", ("ins", "pl"): "ыми"},
    "soft": {("gen", "m"): "его", ("gen", "f"): "ей", ("gen", "pl"): "их",
             ("ins", "m"): "им", ("ins", "f"): "ей", ("ins", "pl"): "ими"},
}
_RU_NUM = {
    ("gen", 1, "m"): "одного", ("gen", 1, "f"): "одной",
    ("ins", 1, "m"): "одним", ("ins", 1, "f"): "одной",
    ("gen", 2): "двух", ("gen", 3): "трёх", ("gen", 4): "четырёх",
    ("ins", 2): "двумя", ("ins", 3): "тремя", ("ins", 4): "четырьмя",
}
# relation: (phrase, case of the reference object)
_RU_REL = {"left of": ("слева от", "gen"), "right of": ("справа от", "gen"),
           "above": ("над", "ins"), "below": ("под", "ins")}


def _np_ru(o: Obj, case: str, one: bool) -> str:
    gender, forms = _RU_NOUN[o.shape]
    number = "sg" if o.count == 1 else "pl"
    words = []
    if o.count == 1 and one:
        words.append(_RU_NUM[(case, 1, gender)])
    elif o.count > 1:
        words.append(_RU_NUM[(case, o.count)])
    if o.color:
        stem, kind = _RU_ADJ_STEM[o.color]
        words.append(stem + _RU_ADJ_END[kind][(case, gender if number == "sg" else "pl")])
    words.append(forms[(case, number)])
    return " ".join(words)


def _ru(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _np_ru(objs[0], "gen", one)
    if len(objs) == 1:
        return f"Фотография {a}"
    if rel is None:
        return f"Фотография {a} и {_np_ru(objs[1], 'gen', one)}"
    phrase, case = _RU_REL[rel]
    return f"Фотография {a} {phrase} {_np_ru(objs[1], case, one)}"


# --------------------------------------------------------------------------------------------
# Chinese: "{NP}的照片" (NeoBabel's frame: "两个时钟的照片", "蓝色消防栓的照片").
# NP = [number + 个] [colour] noun; colour nouns (红色) modify without 的 to avoid a double 的.
# Position as a relative clause: "红色圆形在蓝色星形左边的照片".
# --------------------------------------------------------------------------------------------

_ZH_NOUN = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形",
            "cross": "十字形"}
_ZH_ADJ = {"red": "红色", "orange": "橙色", "yellow": "黄色", "green": "绿色", "blue": "蓝色",
           "purple": "紫色", "pink": "粉红色", "brown": "棕色", "black": "黑色", "white": "白色"}
_ZH_NUM = {1: "一", 2: "两", 3: "三", 4: "四"}  # 两 (not 二) before a classifier
_ZH_REL = {"left of": "左边", "right of": "右边", "above": "上方", "below": "下方"}


def _np_zh(o: Obj, one: bool) -> str:
    core = (_ZH_ADJ[o.color] if o.color else "") + _ZH_NOUN[o.shape]
    if o.count == 1 and not one:
        return core
    return f"{_ZH_NUM[o.count]}个{core}"


def _zh(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _np_zh(objs[0], one)
    if len(objs) == 1:
        return f"{a}的照片"
    b = _np_zh(objs[1], one)
    if rel is None:
        return f"{a}和{b}的照片"
    return f"{a}在{b}{_ZH_REL[rel]}的照片"


# --------------------------------------------------------------------------------------------
# Japanese: "{NP}の写真"; NP = [三つの] [colour] noun with the general counter つ;
# position as a relative clause: "青い星の左にある赤い円の写真".
# --------------------------------------------------------------------------------------------

_JA_NOUN = {"circle": "円", "square": "正方形", "triangle": "三角形", "star": "星",
            "cross": "十字"}
# Attributive forms: i-adjectives where Japanese has one (赤い), else colour noun + の.
_JA_ADJ = {"red": "赤い", "orange": "オレンジ色の", "yellow": "黄色い", "green": "緑の",
           "blue": "青い", "purple": "紫の", "pink": "ピンクの", "brown": "茶色の",
           "black": "黒い", "white": "白い"}
_JA_NUM = {1: "一つ", 2: "二つ", 3: "三つ", 4: "四つ"}
_JA_REL = {"left of": "の左にある", "right of": "の右にある", "above": "の上にある",
           "below": "の下にある"}


def _np_ja(o: Obj, one: bool) -> str:
    core = (_JA_ADJ[o.color] if o.color else "") + _JA_NOUN[o.shape]
    if o.count == 1 and not one:
        return core
    return f"{_JA_NUM[o.count]}の{core}"


def _ja(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _np_ja(objs[0], one)
    if len(objs) == 1:
        return f"{a}の写真"
    b = _np_ja(objs[1], one)
    if rel is None:
        return f"{a}と{b}の写真"
    return f"{b}{_JA_REL[rel]}{a}の写真"


# --------------------------------------------------------------------------------------------
# Korean: "{NP}이/가 있는 사진" ("a photo in which there is NP"), which reads naturally with
# counters ("빨간 원 세 개가 있는 사진") and with positions ("파란 별의 왼쪽에 빨간 원이 있는
# 사진"). NP = [colour] noun [number 개]. Particles follow the final syllable (이/가, 과/와).
# --------------------------------------------------------------------------------------------

_KO_NOUN = {"circle": "원", "square": "정사각형", "triangle": "삼각형", "star": "별",
            "cross": "십자가"}  # UNSURE: 십자가 also means crucifix; 십자 모양 is clumsier
_KO_ADJ = {"red": "빨간", "orange": "주황색", "yellow": "노란", "green": "초록색", "blue": "파란",
           "purple": "보라색", "pink": "분홍색", "brown": "갈색", "black": "검은", "white": "흰"}
_KO_NUM = {1: "한", 2: "두", 3: "세", 4: "네"}  # native numerals before the counter 개
_KO_REL = {"left of": "왼쪽", "right of": "오른쪽", "above": "위쪽", "below": "아래쪽"}


def _ko_has_final(word: str) -> bool:
    """Does the last Hangul syllable end in a consonant (batchim)?"""
    code = ord(word[-1]) - 0xAC00
    if not 0 <= code < 11172:
        raise ValueError(f"not a Hangul syllable: {word[-1]!r}")
    return code % 28 != 0


def _ko_particle(word: str, with_final: str, without_final: str) -> str:
    return word + (with_final if _ko_has_final(word) else without_final)


def _np_ko(o: Obj, one: bool) -> str:
    words = [_KO_ADJ[o.color]] if o.color else []
    words.append(_KO_NOUN[o.shape])
    if o.count > 1 or one:
        words.append(f"{_KO_NUM[o.count]} 개")
    return " ".join(words)


def _ko(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _np_ko(objs[0], one)
    if len(objs) == 1:
        return f"{_ko_particle(a, '이', '가')} 있는 사진"
    b = _np_ko(objs[1], one)
    if rel is None:
        return f"{_ko_particle(a, '과', '와')} {_ko_particle(b, '이', '가')} 있는 사진"
    return f"{b}의 {_KO_REL[rel]}에 {_ko_particle(a, '이', '가')} 있는 사진"


# --------------------------------------------------------------------------------------------
# Arabic: "صورة لـ" + indefinite genitive NP: "صورة لدائرة حمراء". Every NP is genitive (after
# لـ, after على يسار/على يمين, فوق, تحت), which shows in the dual (‑ين). Counting:
#   1: singular (explicit: + واحد/واحدة after the adjective)
#   2: dual noun + dual adjective: "دائرتين حمراوين"
#   3-4: number with gender polarity (ثلاثة with a masculine singular, ثلاث with a feminine one)
#        + plural noun in the genitive; adjectives of non-human plurals are feminine singular:
#        "ثلاث دوائر حمراء", "ثلاثة مربعات حمراء".
# --------------------------------------------------------------------------------------------

# shape: (singular, dual genitive, plural, gender of the singular)
_AR_NOUN = {
    "circle": ("دائرة", "دائرتين", "دوائر", "f"),
    "square": ("مربع", "مربعين", "مربعات", "m"),
    "triangle": ("مثلث", "مثلثين", "مثلثات", "m"),
    # UNSURE: نجمة/نجمات (a star shape, unambiguous feminine pair) rather than نجم/نجوم.
    "star": ("نجمة", "نجمتين", "نجمات", "f"),
    # UNSURE: صليب (cross) is the usual word for the shape but has religious overtones.
    "cross": ("صليب", "صليبين", "صلبان", "m"),
}
# colour: (m sg, f sg, m dual genitive, f dual genitive); non-human plurals take f sg.
_AR_ADJ = {
    "red": ("أحمر", "حمراء", "أحمرين", "حمراوين"),
    "orange": ("برتقالي", "برتقالية", "برتقاليين", "برتقاليتين"),
    "yellow": ("أصفر", "صفراء", "أصفرين", "صفراوين"),
    "green": ("أخضر", "خضراء", "أخضرين", "خضراوين"),
    "blue": ("أزرق", "زرقاء", "أزرقين", "زرقاوين"),
    "purple": ("بنفسجي", "بنفسجية", "بنفسجيين", "بنفسجيتين"),
    "pink": ("وردي", "وردية", "ورديين", "ورديتين"),
    "brown": ("بني", "بنية", "بنيين", "بنيتين"),
    "black": ("أسود", "سوداء", "أسودين", "سوداوين"),
    "white": ("أبيض", "بيضاء", "أبيضين", "بيضاوين"),
}
# numbers 3-4 by the gender of the counted noun's singular (polarity)
_AR_NUM = {(3, "m"): "ثلاثة", (3, "f"): "ثلاث", (4, "m"): "أربعة", (4, "f"): "أربع"}
_AR_ONE = {"m": "واحد", "f": "واحدة"}
_AR_REL = {"left of": "على يسار", "right of": "على يمين", "above": "فوق", "below": "تحت"}


def _np_ar(o: Obj, one: bool) -> str:
    sg, dual, pl, gender = _AR_NOUN[o.shape]
    m_sg, f_sg, m_dual, f_dual = _AR_ADJ[o.color] if o.color else ("",) * 4
    if o.count == 1:
        words = [sg, (f_sg if gender == "f" else m_sg)]
        if one:  # UNSURE: "دائرة حمراء واحدة" (one after the colour) vs "دائرة واحدة حمراء"
            words.append(_AR_ONE[gender])
    elif o.count == 2:
        words = [dual, (f_dual if gender == "f" else m_dual)]
    else:
        words = [_AR_NUM[(o.count, gender)], pl, f_sg]
    return " ".join(w for w in words if w)


def _ar(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _np_ar(objs[0], one)
    if len(objs) == 1:
        return f"صورة ل{a}"
    b = _np_ar(objs[1], one)
    if rel is None:
        return f"صورة ل{a} و{b}"  # the conjunction و and the preposition لـ attach
    return f"صورة ل{a} {_AR_REL[rel]} {b}"


# --------------------------------------------------------------------------------------------
# Hindi: "{NP} की तस्वीर" (तस्वीर is feminine, hence की); NPs before a postposition are oblique.
# Word order is head-final: "{B} के बाईं ओर {A} की तस्वीर" (as NeoBabel: "एक कप के नीचे एक सोफे
# की एक तस्वीर"). Coordinated NPs are both oblique: "एक लाल वृत्त और एक नीले तारे की तस्वीर".
# All five shape nouns are masculine.
# --------------------------------------------------------------------------------------------

# shape: (oblique singular, oblique plural)
_HI_NOUN = {
    "circle": ("वृत्त", "वृत्तों"),
    "square": ("वर्ग", "वर्गों"),
    "triangle": ("त्रिभुज", "त्रिभुजों"),
    "star": ("तारे", "तारों"),  # तारा, oblique तारे
    # UNSURE: the loanword क्रॉस; oblique plural क्रॉसों is regular but some writers leave
    # loanwords uninflected ("तीन क्रॉस").
    "cross": ("क्रॉस", "क्रॉसों"),
}
# masculine oblique forms (sg and pl alike): -ā adjectives become -e, the rest are invariable
_HI_ADJ = {"red": "लाल", "orange": "नारंगी", "yellow": "पीले", "green": "हरे", "blue": "नीले",
           "purple": "बैंगनी", "pink": "गुलाबी", "brown": "भूरे", "black": "काले",
           "white": "सफ़ेद"}
_HI_NUM = {1: "एक", 2: "दो", 3: "तीन", 4: "चार"}
_HI_REL = {"left of": "के बाईं ओर", "right of": "के दाईं ओर", "above": "के ऊपर",
           "below": "के नीचे"}


def _np_hi(o: Obj, one: bool) -> str:
    sg, pl = _HI_NOUN[o.shape]
    words = [_HI_NUM[o.count]]  # एक doubles as the indefinite article, as in NeoBabel's
    if o.color:
        words.append(_HI_ADJ[o.color])
    words.append(sg if o.count == 1 else pl)
    return " ".join(words)


def _hi(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _np_hi(objs[0], one)
    if len(objs) == 1:
        return f"{a} की तस्वीर"
    b = _np_hi(objs[1], one)
    if rel is None:
        return f"{a} और {b} की तस्वीर"
    return f"{b} {_HI_REL[rel]} {a} की तस्वीर"


# --------------------------------------------------------------------------------------------
# Persian: "یک عکس از {NP}" (NeoBabel's frame). Nouns stay singular after numerals
# ("سه دایره"); the colour follows the noun with an unwritten ezafe ("یک دایره قرمز").
# UNSURE: careful orthography may mark the ezafe after silent h ("دایره‌ی قرمز"); everyday
# writing, and NeoBabel's translations, leave it unwritten.
# --------------------------------------------------------------------------------------------

_FA_NOUN = {"circle": "دایره", "square": "مربع", "triangle": "مثلث", "star": "ستاره",
            "cross": "صلیب"}  # UNSURE: صلیب for the cross shape (alternative: علامت بعلاوه)
_FA_ADJ = {"red": "قرمز", "orange": "نارنجی", "yellow": "زرد", "green": "سبز", "blue": "آبی",
           "purple": "بنفش", "pink": "صورتی", "brown": "قهوه‌ای", "black": "سیاه",
           "white": "سفید"}
_FA_NUM = {1: "یک", 2: "دو", 3: "سه", 4: "چهار"}
_FA_REL = {"left of": "در سمت چپ", "right of": "در سمت راست", "above": "بالای",
           "below": "زیر"}


def _np_fa(o: Obj, one: bool) -> str:
    words = [_FA_NUM[o.count], _FA_NOUN[o.shape]]
    if o.color:
        words.append(_FA_ADJ[o.color])
    return " ".join(words)


def _fa(objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    a = _np_fa(objs[0], one)
    if len(objs) == 1:
        return f"یک عکس از {a}"
    b = _np_fa(objs[1], one)
    if rel is None:
        return f"یک عکس از {a} و {b}"
    return f"یک عکس از {a} {_FA_REL[rel]} {b}"


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

_RENDERERS: dict[str, Callable[[tuple[Obj, ...], str | None, bool], str]] = {
    "en": _en, "de": _de, "fr": _fr, "es": _es, "it": _it, "nl": _nl, "ru": _ru,
    "zh": _zh, "ja": _ja, "ko": _ko, "ar": _ar, "hi": _hi, "fa": _fa,
}
assert tuple(sorted(_RENDERERS)) == tuple(sorted(LANGUAGE_CODES)), "a language lacks captions"


def caption(
    lang: str,
    objects: Iterable[Any],
    relation: str | None = None,
    *,
    numeral_one: bool = False,
) -> str:
    """The caption of an object scene in one language.

    ``objects`` holds 1 or 2 items ``(shape, color_or_None, count)`` (mappings or objects with
    ``shape``/``color``/``count`` attributes work too). ``relation`` ("left of", "right of",
    "above", "below") needs 2 objects and reads ``objects[0] REL objects[1]``.
    ``numeral_one`` says a count of 1 with the number word ("one circle") where the language
    has one distinct from the article. Raises InputError for anything unknown.
    """
    code = normalize_lang(lang)
    objs, rel = normalize_scene(objects, relation)
    return _RENDERERS[code](objs, rel, bool(numeral_one))


def captions(
    objects: Iterable[Any],
    relation: str | None = None,
    langs: Iterable[str] | None = None,
    *,
    numeral_one: bool = False,
) -> dict[str, str]:
    """The same scene captioned in several languages (all 13 by default): {code: caption}."""
    objs, rel = normalize_scene(objects, relation)
    codes = LANGUAGE_CODES if langs is None else [normalize_lang(x) for x in langs]
    return {c: _RENDERERS[c](objs, rel, bool(numeral_one)) for c in codes}


def check_task(task: str, objects: Iterable[Any], relation: str | None = None) -> None:
    """Raise InputError unless the scene has the structure of a GenEval task.

    Colours are optional on every object in every task, except that ``colors`` needs its one
    object coloured and ``color_attr`` needs both. Counts are free (1-4) except in
    ``single_object`` and ``colors`` (exactly one object, count 1).
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; use one of: {', '.join(TASKS)}")
    objs, rel = normalize_scene(objects, relation)
    n = len(objs)
    if task in ("single_object", "colors", "counting"):
        if n != 1:
            raise InputError(f"task {task} has one object, got {n}")
        if task != "counting" and objs[0].count != 1:
            raise InputError(f"task {task} has a count of 1, got {objs[0].count}")
        if task == "colors" and objs[0].color is None:
            raise InputError("task colors needs a colour on its object")
    else:
        if n != 2:
            raise InputError(f"task {task} has two objects, got {n}")
        if task == "position" and rel is None:
            raise InputError("task position needs a relation")
        if task != "position" and rel is not None:
            raise InputError(f"task {task} takes no relation, got {relation!r}")
        if task == "color_attr" and any(o.color is None for o in objs):
            raise InputError("task color_attr needs a colour on both objects")


def caption_for_task(
    task: str, lang: str, objects: Iterable[Any], relation: str | None = None
) -> str:
    """Caption a scene as GenEval's ``task`` words it (checks the scene fits the task).

    The counting task names every count with its number word, "one" included
    ("a photo of one circle"); the other tasks use the article for a single object.
    """
    objects = list(objects) if not isinstance(objects, (str, bytes)) else objects
    check_task(task, objects, relation)
    return caption(lang, objects, relation, numeral_one=(task == "counting"))


__all__ = [
    "COLORS", "COUNTS", "RELATIONS", "SHAPES", "TASKS", "Obj",
    "caption", "caption_for_task", "captions", "check_task", "normalize_scene",
]
