"""The study: its seven sections run in order, each from the winners of the ones before
(``study.sections``), the final evaluation of the two best configurations (``study.final``) and
the report beside the study's published numbers (``study.report``)."""
