"""Reference solutions of the course notebooks' exercises: one module per notebook (``nb00`` … ``nb07``).

A notebook's exercise cell leaves a function for you to write; its self-check cell compares your
answer with these, and falls back to them (saying so) while your answer is still ``None``, so the
notebook runs top to bottom either way.  Read them after trying: ``m2v_lab/solutions/nb02.py``.
"""
