"""``rtcheck serve``: the QA dashboard and REST API over the results database."""
