# %% [markdown]
# # Load orders
# Generates the day's order lines (no external data) and registers them as the temp view
# `orders` for the notebooks downstream.

# %% tags=["parameters"]
run_date = "2024-06-30"
order_count = 1_000_000
days = 28

# %%
from pyspark.sql import functions as F

orders = (
    spark.range(order_count)
    .withColumnRenamed("id", "order_id")
    .withColumn("customer_id", F.expr("pmod(xxhash64(order_id, 1), 200000)"))
    .withColumn("product_id", F.expr("pmod(xxhash64(order_id, 2), 20000)"))
    .withColumn("store_id", F.expr("pmod(xxhash64(order_id, 3), 400)"))
    .withColumn("quantity", F.expr("1 + pmod(xxhash64(order_id, 4), 5)").cast("int"))
    .withColumn("unit_price", F.expr("round(1 + pmod(xxhash64(order_id, 5), 20000) / 100, 2)"))
    .withColumn(
        "currency",
        F.element_at(F.array(*[F.lit(c) for c in ["EUR", "USD", "GBP", "CHF"]]),
                     F.expr("1 + pmod(xxhash64(order_id, 6), 4)").cast("int")),
    )
    .withColumn(
        "order_date",
        F.date_sub(F.lit(run_date).cast("date"), F.expr(f"pmod(order_id, {days})").cast("int")),
    )
)
orders.createOrReplaceTempView("orders")

# %%
# A cheap sanity check: the generator must cover every day of the window.
covered = orders.select(F.countDistinct("order_date")).first()[0]
assert covered == min(days, order_count), f"orders cover {covered} days, expected {days}"
spool.exit(f"{order_count} orders over {covered} days up to {run_date}")
