# %% [markdown]
# # Build calendar
# Runs isolated (`isolated = true`): it sets the session time zone for its own date
# arithmetic, which must not leak into the notebooks that share the main session. Isolated
# notebooks do not see the main session's temp views, so the result is published as the global
# temp view `global_temp.calendar`.

# %% tags=["parameters"]
run_date = "2024-06-30"
days = 28

# %%
from pyspark.sql import functions as F

spark.conf.set("spark.sql.session.timeZone", "UTC")

calendar = (
    spark.range(days)
    .select(F.date_sub(F.lit(run_date).cast("date"), F.col("id").cast("int")).alias("day"))
    .withColumn("weekday", F.date_format("day", "EEE"))
    .withColumn("is_weekend", F.dayofweek("day").isin(1, 7))
    .withColumn("iso_week", F.weekofyear("day"))
    .withColumn("is_run_date", F.col("day") == F.lit(run_date).cast("date"))
)
calendar.createOrReplaceGlobalTempView("calendar")
spool.exit(calendar.count())
