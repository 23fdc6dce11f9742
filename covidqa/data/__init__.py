"""Data in: QA records from CSV / SQuAD JSON (:mod:`.records`), long documents cut into passages (:mod:`.passages`),
and the files people have (FAQ tables, PDF, HTML, Markdown, text, CORD-19, SQuAD: :mod:`.formats`) as index-ready
FAQ entries and passages (:mod:`.documents`)."""
