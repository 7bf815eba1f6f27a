"""`provision report`: the auditor's evidence pack (DOC-1), built from the latest verify run and live state."""
