"""Log sources: gateway delivery logs -> ``DeliveryEvent``."""
