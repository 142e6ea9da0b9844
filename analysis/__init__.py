"""Tables 1–4 and Figures 6–7 from the tracking server beside the paper's numbers, and the
reproduction sweep that produces the runs behind them."""
