"""`nbparity fuzz`: the flag grammar (grammar, values, inputs, strategy), one example (example),
the Hypothesis campaign (campaign), minimal cases written out (writeout), and Dask scale-out
(cluster). Hypothesis is the optional 'fuzz' extra; nothing here is imported by other layers."""
