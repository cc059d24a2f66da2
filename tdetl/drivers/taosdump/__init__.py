"""``taosdump:<dir>`` — a taosdump archive read without TDengine or taosdump (formats/taosdump.md)."""
