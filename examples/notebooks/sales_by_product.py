# %% [markdown]
# # Sales by product
# Units and revenue in EUR per product, day and sales channel, net of returns, as the cached temp
# view `sales_by_product`. Reads `orders`, `returns`, `fx_rates`, `products` and `stores`.

# %% tags=["parameters"]
run_date = "2024-06-30"
net_of_returns = True

# %%
from pyspark.sql import functions as F

lines = spark.table("orders")
if net_of_returns:
    # Returns are keyed by order line: a shuffle join of the full window against them.
    lines = lines.join(spark.table("returns").select("order_id", "returned_qty"), "order_id", "left")
else:
    lines = lines.withColumn("returned_qty", F.lit(None).cast("int"))
lines = (
    lines.withColumn("returned_qty", F.coalesce("returned_qty", F.lit(0)))
    .join(F.broadcast(spark.table("fx_rates")), "currency")
    .withColumn("net_amount_eur", (F.col("quantity") - F.col("returned_qty")) * F.col("unit_price") * F.col("rate_to_eur"))
)

sales_by_product = (
    lines.join(F.broadcast(spark.table("stores").select("store_id", "channel")), "store_id")
    .groupBy("product_id", "order_date", "channel")
    .agg(
        F.sum("quantity").alias("units"),
        F.sum("returned_qty").alias("returned_units"),
        F.round(F.sum("net_amount_eur"), 2).alias("net_revenue_eur"),
    )
    .join(spark.table("products").select("product_id", "category"), "product_id")
    # The result is small: a partition per core keeps the report's queries on it cheap.
    .coalesce(spark.sparkContext.defaultParallelism)
    .cache()
)
sales_by_product.createOrReplaceTempView("sales_by_product")

# %%
rows = sales_by_product.count()
latest = sales_by_product.agg(F.max("order_date")).first()[0]
assert str(latest) == run_date, f"latest sales are from {latest}, expected {run_date}"
spool.exit(rows)
