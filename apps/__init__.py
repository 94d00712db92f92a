"""Applications on top of neobabel and magbig: the Streamlit audit explorer (``explorer.py``,
data layer ``data.py``). Nothing in neobabel or magbig imports this package; ``magbig explore``
locates ``explorer.py`` by path and hands it to ``streamlit run``."""
