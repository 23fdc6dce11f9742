"""Data in: QA records from CSV / SQuAD JSON (:mod:`.records`) and long documents cut into passages (:mod:`.passages`)."""
