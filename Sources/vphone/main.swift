print("vphone")
