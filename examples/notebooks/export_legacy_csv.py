# %% [markdown]
# # Export legacy CSV
# Writes the KPIs as CSV for the old reporting system. Inactive in daily_sales.toml
# (`active = false`) until that system is retired for good.

# %% tags=["parameters"]
output_dir = "/tmp/spool-example/legacy"

# %%
kpis = spark.table("daily_kpis")
kpis.coalesce(1).write.mode("overwrite").option("header", True).csv(output_dir)
spool.exit(output_dir)
