"""pynn"""
