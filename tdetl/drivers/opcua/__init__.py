"""``opcua:`` / ``opc+ua:`` — OPC UA points by subscription or polling."""
