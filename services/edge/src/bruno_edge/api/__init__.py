"""The HTTP surface of the edge: dependencies and one router module per resource."""
