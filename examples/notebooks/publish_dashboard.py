# %% [markdown]
# # Publish dashboard
# Reads the report's KPIs and hands them to the dashboard (here: prints the payload).

# %% tags=["parameters"]
run_date = "2024-06-30"

# %%
import json

kpis = [row.asDict() for row in spark.table("daily_kpis").collect()]
payload = json.dumps({"run_date": run_date, "kpis": kpis}, default=str)
print(payload)
spool.exit(len(kpis))
