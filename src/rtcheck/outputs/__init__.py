"""What a decision is written as: the eligibility record, the terminal table, the HTML report
and archive summary, DVH exports."""
