"""Statistics for explanation-rating studies (pandas, SciPy, statsmodels; no Django)."""
