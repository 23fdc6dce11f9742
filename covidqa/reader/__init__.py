"""The extractive reader: windows over long contexts (:mod:`.windows`), the pure span decoder (:mod:`.decoding`),
the reader itself (:mod:`.reader`), scoring against gold answers (:mod:`.scoring`, :mod:`.metrics`)."""
