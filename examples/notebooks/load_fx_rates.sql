-- Load FX rates: daily rates to EUR for the currencies orders are paid in, as the temp view
-- `fx_rates`. A .sql notebook runs statement by statement (each ends with `;`).

CREATE OR REPLACE TEMP VIEW fx_rates AS
SELECT currency, CAST(rate_to_eur AS DECIMAL(10, 6)) AS rate_to_eur
FROM VALUES
  ('EUR', 1.0),
  ('USD', 0.932),
  ('GBP', 1.181),
  ('CHF', 1.037)
AS rates(currency, rate_to_eur);

-- Fails the notebook when a currency of the orders has no rate.
SELECT assert_true(count(*) = 4, 'fx_rates must hold EUR, USD, GBP and CHF') AS complete
FROM fx_rates;
