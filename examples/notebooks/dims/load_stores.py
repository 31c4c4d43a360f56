# %% [markdown]
# # Load stores
# The store dimension as the temp view `stores`; store 0 is the web shop.

# %% tags=["parameters"]
store_count = 400

# %%
from pyspark.sql import functions as F

regions = F.array(*[F.lit(r) for r in ["north", "south", "east", "west"]])
stores = (
    spark.range(store_count)
    .withColumnRenamed("id", "store_id")
    .withColumn("region", F.element_at(regions, F.expr("1 + pmod(store_id, 4)").cast("int")))
    .withColumn("channel", F.when(F.col("store_id") == 0, "online").otherwise("retail"))
)
stores.createOrReplaceTempView("stores")
spool.exit(stores.count())
