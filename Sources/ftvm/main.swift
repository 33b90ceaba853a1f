print("ftvm")
