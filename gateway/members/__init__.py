"""Who the customer is, and what they may spend: identification, coupons, points, offline risk."""
