# %% [markdown]
# # Alert on failure
# Runs only when `daily_report` failed (`on = "failed"`); otherwise it is skipped.

# %% tags=["parameters"]
channel = "#data-alerts"

# %%
message = f"daily_sales: the daily report failed (parameters: {spool.params})"
print(f"[{channel}] {message}")
spool.exit(message)
