# %% [markdown]
# # Load customers
# The customer dimension as the temp view `customers`.

# %% tags=["parameters"]
customer_count = 200_000

# %%
from pyspark.sql import functions as F

segments = F.array(*[F.lit(s) for s in ["consumer", "small_business", "enterprise"]])
countries = F.array(*[F.lit(c) for c in ["DE", "FR", "NL", "GB", "US", "CH"]])
customers = (
    spark.range(customer_count)
    .withColumnRenamed("id", "customer_id")
    .withColumn("segment", F.element_at(segments, F.expr("1 + pmod(xxhash64(customer_id, 7), 3)").cast("int")))
    .withColumn("country", F.element_at(countries, F.expr("1 + pmod(xxhash64(customer_id, 8), 6)").cast("int")))
    .withColumn("signup_year", F.expr("2015 + pmod(customer_id, 10)").cast("int"))
)
customers.createOrReplaceTempView("customers")
spool.exit(customers.count())
