"""``sockscope report``: a recording as one self-contained page of plots and tables."""
