"""Text in tokens and words: tokenization with dynamic padding (:mod:`.tokenization`), the word regex and BM25 scoring
(:mod:`.lexical`), and how a question's words meet a passage's (:mod:`.question_match`)."""
