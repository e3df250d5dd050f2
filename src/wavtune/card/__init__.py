"""Model cards: the card, its Hub metadata, the Trainer-format table, plots, error report."""
