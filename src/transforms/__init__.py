"""Pure ``DataFrame -> DataFrame`` functions, usable on streaming and static DataFrames alike.

No I/O and no SparkSession creation here: that is what lets the stream, batch reprocessing
and BI share the same code.
"""
