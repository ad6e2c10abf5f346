-- A whole pipeline in Kiln SQL: make data, train k-means and logistic regression, evaluate,
-- predict, and keep the models in the catalog.
--
--   cargo run --bin kiln -- sql -f examples/sql/pipeline.sql
--
-- Customers with a tenure (months), a monthly spend and a number of support calls; whether
-- they churned follows a noisy rule of those. (Deterministic: no random functions.)
CREATE OR REPLACE TABLE customers AS
SELECT
    value AS id,
    CAST(value * 7919 % 72 AS DOUBLE) AS tenure,
    CAST(20 + value * 104729 % 80 AS DOUBLE) AS spend,
    CAST(value * 31 % 6 AS DOUBLE) AS calls,
    CASE WHEN (value * 31 % 6) * 12 + (value * 104729 % 80) / 2 - (value * 7919 % 72)
              + (value * 13 % 17) > 40
         THEN 1.0 ELSE 0.0 END AS churned
FROM generate_series(1, 20000);

-- Four customer segments on spend and calls, each scaled to unit variance first: the fitted
-- scalers are kept with the model and applied wherever it predicts.
TRAIN MODEL segments USING kmeans (k = 4, seed = 7, max_iter = 30)
    TRANSFORM (standard_scaler(spend) AS spend_z, standard_scaler(calls) AS calls_z)
    AS SELECT * FROM customers;

-- Churn, trained on 80% of the customers (BigQuery's spelling works too).
CREATE OR REPLACE MODEL churn
    OPTIONS (type = 'logistic_regression', label = 'churned', reg_param = 0.001, max_iter = 100)
    AS SELECT tenure, spend, calls, churned FROM customers WHERE id % 5 <> 0;

SHOW MODELS;

-- How good is each, on the held-out 20%?
SELECT * FROM EVALUATE(MODEL churn, (SELECT * FROM customers WHERE id % 5 = 0));
SELECT * FROM EVALUATE(MODEL segments, (SELECT * FROM customers));

-- Predictions in expressions (predict takes the raw columns the TRANSFORM reads) and as a
-- table.
SELECT predict('segments', spend, calls) AS segment, count(*) AS customers,
       round(avg(churned), 3) AS churn_rate
FROM customers GROUP BY 1 ORDER BY 1;

SELECT id, tenure, spend, calls, prediction AS will_churn,
       round(probability[2], 3) AS p_churn
FROM PREDICT(MODEL churn, (SELECT * FROM customers WHERE id % 5 = 0))
ORDER BY p_churn DESC, id LIMIT 5;
